// CT-RATE's vocabulary: the abnormality label columns and the organ classes of segmentation masks. The synthetic
// generator writes these, the label extractor reads reports into them and evaluation reports on them, so they
// live below all three.

/** CT-RATE's 18 label columns, in the dataset's order. */
export const CT_RATE_LABELS = [
  'Medical material',
  'Arterial wall calcification',
  'Cardiomegaly',
  'Pericardial effusion',
  'Coronary artery wall calcification',
  'Hiatal hernia',
  'Lymphadenopathy',
  'Emphysema',
  'Atelectasis',
  'Lung nodule',
  'Lung opacity',
  'Pulmonary fibrotic sequela',
  'Pleural effusion',
  'Mosaic attenuation pattern',
  'Peribronchial thickening',
  'Consolidation',
  'Bronchiectasis',
  'Interlobular septal thickening',
] as const;
export type CtRateLabel = (typeof CT_RATE_LABELS)[number];

/** Organ classes of the segmentation masks; a mask voxel holds the class's index. */
export const MASK_CLASSES = ['background', 'lung_right', 'lung_left', 'heart', 'aorta', 'spine', 'airway'] as const;
export type MaskClass = (typeof MASK_CLASSES)[number];
