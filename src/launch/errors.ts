// errors.ts — errors of `paratrain launch`. The CLI prints `paratrain: error [CODE]: message` and
// exits 1 for any error with a `code`, so every way a launch can end badly is one of these.
export class LaunchError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'LaunchError';
  }
}
