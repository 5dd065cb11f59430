// plot-error.ts — the one error `paratrain plot` throws for what a user can fix (a missing log, an
// unknown metric, an output it cannot write): a code (ERR_PLOT_*) and a message that names the fix.
export class PlotError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
