// The public surface of the package (`import { … } from 't3d'`): the engine (also as 't3d/torch'), models, the
// objectives, data and text handling (with each preset's input transform), pre-training, evaluation metrics and
// tasks, and the service layer (analyzer, indexers, search, web server).
// Everything else under dist/ is internal and may change.
export * as torch from './torch/index.js';
export { ResNet3d, type ResNet3dConfig } from './models/resnet3d.js';
export { MerlinImageEncoder, MERLIN_RESNET152, fromLps, type MerlinImageConfig } from './models/merlin.js';
export { ViT3d, type ViT3dConfig } from './models/vit3d.js';
export { BertModel, bertConfig, loadBertFromPretrained, readBertConfig, type BertConfig } from './models/bert.js';
export { BertForMaskedLM } from './models/bert-mlm.js';
export { ClipModel, T3dModel, type VolumeEncoding, type ReportEncoding } from './models/t3d.js';
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
export { readNifti, type NiftiImage } from './io/nifti.js';
export { writeNifti } from './io/nifti-write.js';
export { readDicomVolume } from './io/dicom.js';
export { loadTorchPt, stateDictOf, type PtFile, type PtValue } from './io/torch-pt/load.js';
export { CT_RATE_LABELS, MASK_CLASSES, type CtRateLabel, type MaskClass } from './domain/ct-rate.js';
export { LOCAL_FINDING_LABELS, type LocalFindingLabel } from './domain/local-findings.js';
export { loadPreset, presetNames, globalShapeOf, resolvePreset, type Preset } from './data/presets.js';
export { inputTransform, type InputTransform } from './data/input-transform.js';
export { readScan, type Scan, type ScanHeader } from './data/scan.js';
export { inspectScan, ScanRefusedError, type ScanInspection, type ScanWarning } from './data/scan-checks.js';
export { inspectScanFile } from './service/inspect.js';
export { buildCache, readCacheIndex, type CacheIndex, type CacheEntry } from './data/cache.js';
export { preprocessImage } from './data/preprocess-image.js';
export { writeSynthDataset } from './data/synth/dataset.js';
export { synthLabels, type SynthVersion } from './data/synth/local-findings.js';
export { reportRegions, LOBES, type Region } from './text/regions.js';
export { BatchNormRecalibration, recalibrateOnCrops } from './inference/recalibrate.js';
export { WordPieceTokenizer, toBigInt64 } from './text/wordpiece.js';
export { splitSentences, augmentReport } from './text/report.js';
export { loadConfig, applyOverrides, validateConfig, configNames, type PretrainConfig } from './train/config.js';
export { buildT3dModel, loadT3dCheckpoint, type LoadedCheckpoint } from './train/factory.js';
export { loadMerlinImageEncoder, type MerlinImageImport } from './train/merlin-load.js';
export { importModel, type ImportOptions } from './train/import-model.js';
export { MODEL_FORMATS, type ModelFormat } from './train/formats/index.js';
export { runPretraining, type PretrainRun } from './train/run.js';
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
export { embedSplit, embedTexts, type Embedded } from './inference/embed.js';
export { zeroShotPrompts, zeroShotScores, scoresFromPrompts } from './eval/tasks/zeroshot.js';
export { EVAL_TASKS } from './eval/registry.js';
export { type EvalTask, type EvalRecord } from './eval/task.js';
export { evaluateCheckpoint, type Evaluated } from './eval/evaluate-checkpoint.js';
export { analyzeScan, openAnalyzer, type Analysis, type Analyzer } from './service/analyzer.js';
export { VectorIndex, type IndexRow, type Hit, type SearchFilter } from './service/vector-index.js';
export { indexCache, indexScans, indexDicomWeb } from './service/indexer.js';
export { searchText, searchSimilar } from './service/search.js';
export { startServer, type ServeOptions } from './service/server.js';
