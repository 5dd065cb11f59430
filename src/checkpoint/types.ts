// types.ts — the checkpoint package's shared types. The manifest's and the shard report's are the
// generated protobuf messages of proto/checkpoint.proto (src/proto.ts) as plain data, with 64-bit
// integers as numbers and sub-messages complete.
import type { ModelFamily } from '../config/schema';
import type { paratrain } from '../generated/proto';
import type { Plain, With } from '../proto';

/** A named fp32 tensor in row-major (C) order. The engine's flat parameter table is converted to/from this. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Like NamedTensor but also admits int32 data (token ids, labels in test fixtures). */
export interface AnyTensor {
  name: string;
  shape: number[];
  data: Float32Array | Int32Array;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---- the manifest (proto/checkpoint.proto) ---------------------------------------------------------

export type TensorRole = 'unspecified' | 'parameter' | 'optimizer_state';

export type ManifestSliceDim = Plain<paratrain.SliceDim>;

/** One piece of a tensor in a file; `key` '' means the same as `name`. */
export type ManifestTensorEntry = With<Plain<paratrain.TensorEntry>, { slice: ManifestSliceDim[]; role: TensorRole }>;

export type ManifestFileEntry = Plain<paratrain.FileEntry>;

/** Resumable state beyond the tensors, recorded in the manifest: the key of every random stream, the
 * learning-rate schedule (src/train/schedule.ts ScheduleSpec) with the lr of the next step, dynamic loss
 * scaling (disabled in fp32). */
export type TrainingState = With<
  Plain<paratrain.TrainingState>,
  {
    rng: Plain<paratrain.RngState>;
    schedule: Plain<paratrain.LrSchedule>;
    lossScale: Plain<paratrain.LossScaleState>;
  }
>;

/** The manifest as decodeManifest returns it (the end marker is checked there, not kept). */
export type CheckpointManifest = With<
  Omit<Plain<paratrain.CheckpointManifest>, 'endMarker'>,
  {
    layout: Plain<paratrain.Layout>;
    optimizer: Plain<paratrain.OptimizerInfo>;
    tensors: ManifestTensorEntry[];
    files: ManifestFileEntry[];
    /** Absent in version-1 manifests and in checkpoints written without it (import from Hugging Face). */
    training?: TrainingState;
  }
>;

// ---- sharded saves -------------------------------------------------------------------------------

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

/**
 * One rank's finished part of a save: its files (fsync'd, renamed into place) and the pieces in
 * them, the bytes written and the wall time (for logs and the benchmark); rank 0's also carries the
 * header.
 */
export type ShardReport = With<
  Plain<paratrain.ShardReport>,
  { files: ManifestFileEntry[]; tensors: ManifestTensorEntry[]; header?: CheckpointHeader }
>;

/** A CheckpointHeader whose training state may be absent (saveCheckpoint without one, import). */
export type ManifestHeader = Omit<CheckpointHeader, 'training'> & { training?: TrainingState };

// ---- whole-model saves (saveCheckpoint / loadCheckpoint) ---------------------------------------------

/** The model family a checkpoint holds (config model.arch). */
export type Arch = ModelFamily;

export interface OptimizerCheckpoint {
  name: string;
  step: number;
  /** Optimizer state tensors, named e.g. "exp_avg.<param>" / "exp_avg_sq.<param>". */
  state: NamedTensor[];
}

export interface CheckpointData {
  step: number;
  consumedSamples: number;
  /** The resolved run configuration (stored as JSON). */
  config: object;
  arch: Arch;
  optimizer: OptimizerCheckpoint;
  params: NamedTensor[];
  tokenizerJson?: string;
  /** Any JSON-serialisable resumable state beyond `training`. */
  extra?: unknown;
  /** RNG, learning-rate schedule and loss scale; absent where the writer had none (import). */
  training?: TrainingState;
}

export interface SaveCheckpointOptions {
  /** How many committed checkpoints to keep (newest by step). Default 3, clamped to at least 2. */
  keep?: number;
  /**
   * Only {1, 1} (the default) is accepted: saveCheckpoint writes whole tensors. Sharded saves go
   * through writeShard + commitCheckpoint.
   */
  layout?: { tensorParallel: number; dataParallel: number };
}

export interface SavedCheckpoint {
  dir: string;
  manifest: CheckpointManifest;
  /** Directories removed by pruning. */
  pruned: string[];
  /**
   * Upkeep after the commit that failed (an old checkpoint that could not be pruned, leftovers that
   * could not be removed): the checkpoint is committed regardless; callers log these as warnings.
   */
  upkeepFailures: { dir: string; message: string }[];
}

export interface LoadCheckpointOptions {
  /** Check sizes and sha256 of every file against the manifest (default true). */
  verify?: boolean;
  /** Also read optimizer state (default true); false returns an empty state list. */
  loadOptimizer?: boolean;
}

export interface LoadedCheckpoint extends CheckpointData {
  /** The step directory that was loaded. */
  dir: string;
  manifest: CheckpointManifest;
}
