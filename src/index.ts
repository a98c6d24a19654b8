// The public surface of the package (`import { … } from 't3d'`): the engine (also as 't3d/torch'), models, the
// objectives, data and text handling, pre-training, evaluation metrics and tasks, and the embedding index.
// Everything else under dist/ is internal and may change.
export * as torch from './torch/index.js';
export { ResNet3d, type ResNet3dConfig } from './models/resnet3d.js';
export { ViT3d, type ViT3dConfig } from './models/vit3d.js';
export { BertModel, bertConfig, loadBertFromPretrained, readBertConfig, type BertConfig } from './models/bert.js';
export { BertForMaskedLM } from './models/bert-mlm.js';
export { T3dModel, type VolumeEncoding, type ReportEncoding } from './models/t3d.js';
export { clipLoss } from './objectives/clip.js';
export { t3dLoss, type ObjectiveConfig, type ViewBatch } from './objectives/t3d.js';
export {
  tmaTerm,
  tmaFormulation,
  TMA_FORMULATIONS,
  type TmaConfig,
  type TmaFormulation,
  type TmaFormulationSpec,
  type TmaNeeds,
} from './objectives/tma/index.js';
export { sinkhorn } from './objectives/tma/shared.js';
export { readNifti, writeNifti, type NiftiImage } from './io/nifti.js';
export { readDicomVolume } from './io/dicom.js';
export { loadPreset, presetNames, globalShapeOf, type Preset } from './data/presets.js';
export { buildCache, readCacheIndex, type CacheIndex, type CacheEntry } from './data/cache.js';
export { preprocessImage } from './data/preprocess-image.js';
export { writeSynthDataset } from './data/synth/dataset.js';
export { WordPieceTokenizer, toBigInt64 } from './text/wordpiece.js';
export { splitSentences, augmentReport } from './text/report.js';
export { loadConfig, applyOverrides, validateConfig, configNames, type PretrainConfig } from './train/config.js';
export { buildT3dModel, loadT3dCheckpoint } from './train/factory.js';
export { pretrain } from './train/trainer.js';
export { pretrainText } from './train/text-pretrain.js';
export {
  auroc,
  macroAuroc,
  averagePrecision,
  rocCurve,
  youdenThreshold,
  binaryStats,
  recallAtK,
} from './eval/metrics/classification.js';
export { embedSplit, embedTexts, zeroShotPrompts, zeroShotScores, scoresFromPrompts } from './eval/tasks/zeroshot.js';
export { analyzeScan, type Analysis } from './app/analyze.js';
export { VectorIndex, type IndexRow, type Hit, type SearchFilter } from './search/vector-index.js';
