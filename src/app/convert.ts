// `t3d convert`: DICOM series → NIfTI.
import { convertDicomToNifti } from '../io/dicom.js';
import { parseOptions } from './args.js';

export const CONVERT_SUMMARY = 'convert DICOM series (a folder, searched recursively) to NIfTI, HU as int16 when exact';
export const CONVERT_USAGE =
  't3d convert <dicom-folder|file> <out.nii.gz> [--modality CT] [--allow-gaps]\n\n' +
  'A folder with several series writes <out>_1.nii.gz, <out>_2.nii.gz, ... in SeriesNumber order.\n' +
  'Unevenly spaced slices (e.g. a missing slice) are an error unless --allow-gaps.\n\n' +
  'Examples:\n  t3d convert scans/patient1 out/patient1.nii.gz --modality CT\n  t3d convert scans/study out/study.nii.gz --allow-gaps';

export async function runConvert(args: string[]): Promise<void> {
  const [input, out, ...rest] = args;
  if (!input || !out || input.startsWith('--') || out.startsWith('--'))
    throw new Error(`convert needs an input and an output\n\nUsage: ${CONVERT_USAGE}`);
  const o = parseOptions(rest, { modality: 'string', 'allow-gaps': 'boolean' });
  const written = await convertDicomToNifti(input, out, {
    modality: o.modality as string | undefined,
    rejectGaps: !o['allow-gaps'],
  });
  for (const w of written) {
    const spacing = w.spacing.map((s) => +s.toFixed(4)).join(' x ');
    console.log(
      `wrote ${w.path}: ${w.shape.join(' x ')} ${w.dtype}, ${spacing} mm, ${w.modality ?? '?'} series ${w.seriesInstanceUID}${w.description ? ` "${w.description}"` : ''}`,
    );
    for (const warning of w.warnings) console.log(`  warning: ${warning}`);
  }
}
