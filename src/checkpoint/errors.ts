import * as fs from 'node:fs';

export type CheckpointErrorCode =
  | 'ERR_CHECKPOINT_CORRUPT'
  | 'ERR_CHECKPOINT_NOT_FOUND'
  | 'ERR_CHECKPOINT_UNSUPPORTED'
  | 'ERR_CHECKPOINT_INVALID_ARG'
  /** The checkpoint holds other tensors or shapes than the model that loads it. */
  | 'ERR_CHECKPOINT_MISMATCH'
  /** A rank's shard report is malformed, or the reports of one save do not fit together. */
  | 'ERR_SHARD_REPORT'
  /** A save ran out of space (ENOSPC, or the quota: EDQUOT); restarting cannot help until space is freed. */
  | 'ERR_DISK_FULL'
  /** `--resume auto` found checkpoints, but none that verifies. */
  | 'ERR_CHECKPOINT_NONE_VALID';

/** Error with a stable `code` so callers (CLI, resume logic) can branch without parsing messages. */
export class CheckpointError extends Error {
  readonly code: CheckpointErrorCode;
  /** The file or directory the problem was found in, when there is one. */
  readonly file: string | undefined;

  constructor(code: CheckpointErrorCode, message: string, file?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckpointError';
    this.code = code;
    this.file = file;
  }
}

export function corrupt(file: string, what: string, cause?: unknown): CheckpointError {
  return new CheckpointError(
    'ERR_CHECKPOINT_CORRUPT',
    `${file}: ${what}`,
    file,
    cause === undefined ? undefined : { cause },
  );
}

export function isErrnoException(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}

/** The filesystem, or the user's quota on it, is full. */
export function isDiskFull(e: unknown): boolean {
  return isErrnoException(e) && (e.code === 'ENOSPC' || e.code === 'EDQUOT');
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * The coded error for a write under `dir` that ran out of space: "disk full" with the path, the
 * bytes the write needed (when known) and what is free there now. Undefined when `err` is not
 * ENOSPC / EDQUOT; an ERR_DISK_FULL already made is returned as it is.
 */
export function diskFullError(
  err: unknown,
  dir: string,
  opts: { file?: string; bytesNeeded?: number } = {},
): CheckpointError | undefined {
  if (err instanceof CheckpointError && err.code === 'ERR_DISK_FULL') return err;
  if (!isDiskFull(err)) return undefined;
  const where = opts.file ?? (err as NodeJS.ErrnoException).path ?? dir;
  let free = '';
  try {
    const s = fs.statfsSync(dir);
    free = `, ${megabytes(s.bavail * s.bsize)} free there`;
  } catch {
    // the directory may be gone; the message goes without the figure
  }
  const needed = opts.bytesNeeded !== undefined ? `: the save needs about ${megabytes(opts.bytesNeeded)}` : '';
  const quota = (err as NodeJS.ErrnoException).code === 'EDQUOT' ? ' (disk quota exceeded)' : '';
  return new CheckpointError(
    'ERR_DISK_FULL',
    `disk full${quota} writing ${where}${needed}${free}; make room on that filesystem (or lower checkpoint.keep) and resume ` +
      'with --resume auto',
    where,
    { cause: err },
  );
}
