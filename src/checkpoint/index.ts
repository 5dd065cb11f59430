// The checkpoint package's one entry: the rest of src/ imports from here, never from a file inside
// (the lint enforces it). See docs/checkpoint-format.md.
export * from './types';
export {
  CheckpointError,
  corrupt,
  diskFullError,
  isDiskFull,
  isErrnoException,
  type CheckpointErrorCode,
} from './errors';
export {
  encodeSafetensorsHeader,
  MAX_HEADER_BYTES,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  type ReadSafetensorsOptions,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type SafetensorsTensor,
  type WrittenFile,
} from './safetensors';
export {
  decodeManifest,
  encodeManifest,
  MANIFEST_END_MARKER,
  MANIFEST_FORMAT_VERSION,
  OPTIMIZER_STATE_PREFIX,
  shardReportProtoType,
} from './manifest';
export { headerFromManifest } from './header';
export {
  checkpointDirFor,
  DEFAULT_KEEP,
  isStepDirName,
  LATEST_FILE,
  listCheckpoints,
  MANIFEST_FILE,
  MIN_KEEP,
  MODEL_FILE,
  OPTIMIZER_FILE,
  readCheckpointManifest,
  readLatest,
  removeUncommittedShards,
  resolveCheckpointDir,
  shardFileName,
  TOKENIZER_FILE,
  type CheckpointListing,
  type UpkeepFailure,
} from './store';
export {
  describeSetAside,
  resumeAuto,
  selectResumeCheckpoint,
  verifyCheckpoint,
  verifyCheckpointDir,
  verifyCheckpointFiles,
  type ResumeAutoOptions,
  type UnverifiedCheckpoint,
} from './verify';
// Whole-model saves (import, export, inference, tests).
export { loadCheckpoint, saveCheckpoint } from './checkpoint';
// Sharded saves: every rank writes its shard, one process commits, any layout reads its part.
export { writeShard } from './shard-writer';
export { decodeShardReport, encodeShardReport } from './shard-report';
export { commitCheckpoint } from './commit';
export { readRankState } from './shard-reader';
export { MIN_PIECE_ELEMENTS, planShardWriters, type ShardWritePiece, type ShardWriter } from './shard-plan';
