// errors.ts — the control plane's errors: each has a stable `code` (ERR_PORT_IN_USE, ERR_REJECTED,
// ERR_MASTER_UNREACHABLE, ...) that the CLI prints and callers branch on.
export class ControlError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}
