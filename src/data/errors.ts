/** Error codes the data pipeline raises for problems a user can fix. */
/** ERR_CORPUS: the corpus exists but its content cannot be trained on (empty, binary, malformed, too short). */
export type DataErrorCode = 'ERR_DATA_NOT_FOUND' | 'ERR_TOKENIZER' | 'ERR_DATA_CONFIG' | 'ERR_CORPUS';

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
