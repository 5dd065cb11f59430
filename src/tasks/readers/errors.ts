import type { TextFileRole } from '../../data/documents';
import { DataError } from '../../data/errors';

/** A fine-tuning data file, for readTextFile's messages. */
export const TASK_DATA_FILE: TextFileRole = {
  noun: 'data file',
  code: 'ERR_TASK_DATA',
  whenEmpty: 'put labelled examples in it',
};

/** A malformed fine-tuning data file; the message starts with file:line where there is one. */
export function taskDataError(message: string): DataError {
  return new DataError('ERR_TASK_DATA', message);
}
