// The library entry point: `require('paratrain')` / `import ... from 'paratrain'` gives what the CLI
// is built on, typed (dist/index.d.ts). Every error it throws carries a `code`.
export { loadConfig, validateConfig, ConfigError, listPresets } from './config/load';
export { MODEL_FAMILIES, type Config, type ModelFamily } from './config/schema';
// train (one process) and launch (a distributed job: one call per node)
export { train, TrainingError, TrainRequests, type TrainResult, type TrainOptions } from './train/trainer';
export { runLaunch as launch, type LaunchOptions } from './launch/launcher';
export { LaunchError } from './launch/errors';
export { learningRate, scheduleFromConfig } from './train/schedule';
export { openDataset, type Dataset } from './data/dataset';
export type { TrainBatch } from './data/batch';
export { DataError } from './data/errors';
export { loadCorpus, corpusDocuments } from './data/corpus';
export { preprocess, type PreprocessOptions, type PreprocessOutput } from './data/preprocess';
export { IndexedDataset, IndexedDatasetWriter } from './data/indexed-dataset';
export { TextTokenizer } from './data/tokenizer';
export { createEngine, engineOptions, paramTableFor, splitFlat, joinFlat } from './engine/engine';
export { modelSpec, type ModelSpec } from './engine/spec';
export {
  loadNative,
  NativeLoadError,
  REQUEST_SAVE,
  REQUEST_STOP,
  type NativeEngine,
  type StepMetrics,
} from './engine/native';
// checkpoints: save/load, and the tools behind `paratrain checkpoint ls | verify | inspect`
export {
  saveCheckpoint,
  loadCheckpoint,
  listCheckpoints,
  readCheckpointManifest,
  resolveCheckpointDir,
  selectResumeCheckpoint,
  verifyCheckpoint,
  CheckpointError,
  type CheckpointManifest,
  type CheckpointListing,
  readSafetensors,
  writeSafetensors,
} from './checkpoint';
// Hugging Face export/import (`paratrain export`, `paratrain import`)
export { exportCheckpointToHf, importHfToCheckpoint } from './interop/convert';
export { exportHuggingFace, importHuggingFace, toHuggingFace, fromHuggingFace } from './interop/hf';
export { loadModel } from './infer/load';
export { fillMask } from './infer/fill-mask';
export { generate } from './infer/generate';
export { embed, evaluateCheckpoint, predict, type EvaluationResult, type Prediction } from './infer/tasks';
export { runBench, type BenchResult } from './bench/bench';
export { benchLayouts, parseLayouts } from './bench/layouts';
// `paratrain plan`: memory, layouts, communication and step time from a config (docs/planning.md)
export { planRun, formatPlan, type Plan, type LayoutPlan, type PlanOptions } from './plan/plan';
export { DEVICES, cpuDevice, type Device, type Precision } from './plan/devices';
// Fine-tuning's data side: readers, metrics, sequences (docs/fine-tuning.md)
export * as tasks from './tasks';
