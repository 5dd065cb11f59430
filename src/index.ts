// The library entry point: what a program embedding paratrain uses (the CLI is built on these).
export { loadConfig, validateConfig, ConfigError, listPresets } from './config/load';
export { MODEL_FAMILIES, type Config, type ModelFamily } from './config/schema';
export { train, TrainingError, type TrainResult, type TrainOptions } from './train/trainer';
export { learningRate, scheduleFromConfig } from './train/schedule';
export { openDataset, type Dataset } from './data/dataset';
export type { TrainBatch } from './data/batch';
export { TextTokenizer } from './data/tokenizer';
export { createEngine, engineOptions, paramTableFor, splitFlat, joinFlat } from './engine/engine';
export { modelSpec, type ModelSpec } from './engine/spec';
export { loadNative, NativeLoadError, type NativeEngine, type StepMetrics } from './engine/native';
export { saveCheckpoint, loadCheckpoint, listCheckpoints, readSafetensors, writeSafetensors } from './checkpoint';
export { exportCheckpointToHf, importHfToCheckpoint } from './interop/convert';
export { exportHuggingFace, importHuggingFace, toHuggingFace, fromHuggingFace } from './interop/hf';
export { loadModel } from './infer/load';
export { fillMask } from './infer/fill-mask';
export { generate } from './infer/generate';
export { runBench } from './bench/bench';
