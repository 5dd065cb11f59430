// sharded.ts — per-rank checkpoint shards: every rank writes the pieces of its tensors it is
// assigned, reports them (files, checksums, slices), and one process commits the step by writing
// the manifest. Loading reads, for each of a rank's tensors, only the byte ranges it needs from
// whichever pieces overlap it, so any layout loads any other's checkpoint.
// The types below and the function signatures were agreed between the trainer, the coordinator
// and this module; see docs/checkpoint-format.md.
import type { Arch } from './checkpoint';
import type { ManifestFileEntry, ManifestTensorEntry } from './manifest';

/** One tensor of a rank's flat buffers, as the engine's paramTable() describes it. */
export interface ShardTensor {
  name: string;
  /** Local (this rank's, vocabulary padding included) shape. */
  shape: number[];
  /** The whole tensor's shape, without padding. */
  globalShape: number[];
  /** Tensor-parallel split axis; -1 when every TP rank holds the whole tensor. */
  splitDim: number;
  /** Along splitDim this rank holds global [shardStart, shardStart + shardValid); local rows past shardValid are padding. */
  shardStart: number;
  shardValid: number;
  /** Element offset of the tensor in the flat buffers. */
  offset: number;
  numel: number;
}

/** What one rank hands to writeShard: copies the caller will not touch until the promise settles. */
export interface RankShard {
  step: number;
  rank: number;
  tpRank: number;
  tpSize: number;
  dpRank: number;
  dpSize: number;
  table: ShardTensor[];
  params: Float32Array;
  optimizer: { name: string; step: number; m: Float32Array; v: Float32Array };
  /** Rank 0 only: written as tokenizer.json. */
  tokenizerJson?: string;
}

/** Resumable state beyond the tensors, recorded in the manifest. */
export interface TrainingState {
  /** Key of every random stream (dropout masks) and the rule that derives a stream from the step. */
  rng: { seed: number; scheme: string };
  /** The learning-rate schedule (src/train/schedule.ts ScheduleSpec) and the lr of the next step. */
  schedule: {
    kind: string;
    lr: number;
    minLr: number;
    steps: number;
    warmupSteps: number;
    power: number;
    nextLr: number;
  };
  /** Dynamic loss scaling (mixed precision); disabled in fp32. */
  lossScale: { enabled: boolean; scale: number; growthTracker: number };
}

/** Everything in the manifest that is not a file or a tensor piece; sent by rank 0. */
export interface CheckpointHeader {
  step: number;
  consumedSamples: number;
  config: object;
  arch: Arch;
  optimizer: { name: string; step: number };
  layout: { tensorParallel: number; dataParallel: number };
  training: TrainingState;
  extra?: unknown;
}

/** One rank's finished part of a save: its files (fsync'd, renamed into place) and the pieces in them. */
export interface ShardReport {
  step: number;
  rank: number;
  files: ManifestFileEntry[];
  tensors: ManifestTensorEntry[];
  /** Bytes written and wall time, for logs and the benchmark. */
  bytes: number;
  writeMs: number;
  /** Rank 0 only. */
  header?: CheckpointHeader;
}

// The agreed functions; each lives with its concept.
export { writeShard } from './shard-writer';
export { encodeShardReport, decodeShardReport } from './shard-report';
export { commitCheckpoint } from './commit';
export { readRankState } from './shard-reader';
export { selectResumeCheckpoint } from './verify';
// Addition: the writer plan (tests and tools show who writes what).
export { MIN_PIECE_ELEMENTS, planShardWriters, type ShardWritePiece, type ShardWriter } from './shard-plan';
