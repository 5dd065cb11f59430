export type CheckpointErrorCode =
  | 'ERR_CHECKPOINT_CORRUPT'
  | 'ERR_CHECKPOINT_NOT_FOUND'
  | 'ERR_CHECKPOINT_UNSUPPORTED'
  | 'ERR_CHECKPOINT_INVALID_ARG'
  /** The checkpoint holds other tensors or shapes than the model that loads it. */
  | 'ERR_CHECKPOINT_MISMATCH'
  /** A rank's shard report is malformed, or the reports of one save do not fit together. */
  | 'ERR_SHARD_REPORT';

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
