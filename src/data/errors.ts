/** Error codes the data pipeline raises for problems a user can fix. */
/**
 * ERR_CORPUS: the corpus exists but its content cannot be trained on (empty, binary, malformed, too short).
 * ERR_TASK_DATA: a fine-tuning data file (labelled examples) is malformed or does not fit the task.
 * ERR_DATA_FORMAT: a preprocessed (.bin/.idx) dataset is truncated, corrupt or of another format.
 */
export type DataErrorCode =
  'ERR_DATA_NOT_FOUND' | 'ERR_TOKENIZER' | 'ERR_DATA_CONFIG' | 'ERR_CORPUS' | 'ERR_TASK_DATA' | 'ERR_DATA_FORMAT';

/**
 * An Error carrying a stable `code`, so the CLI can print a clean message
 * (and tests can match) without parsing message text.
 */
export class DataError extends Error {
  readonly code: DataErrorCode;

  constructor(code: DataErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DataError';
    this.code = code;
  }
}
