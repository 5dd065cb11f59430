// dashboard-command.ts — `paratrain dashboard RUN_DIR`: serves the live page of a run (going on or
// finished) from its log.jsonl until Ctrl-C. The server is src/dashboard/; docs/dashboard.md
// describes it. Bad flags are DashboardErrors; main.ts prints them.
import type { Command } from 'commander';

import { DashboardError, DEFAULT_HOST, DEFAULT_PORT, startDashboard } from '../dashboard/server';

/** A port number from a flag, or a DashboardError naming the flag. */
export function parsePort(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || n > 65535)
    throw new DashboardError('ERR_DASHBOARD_OPTION', `${flag}: '${text}' is not a port number (0 to 65535)`);
  return n;
}

/** `--dashboard [HOST:]PORT` of `paratrain train`: '6006', '0.0.0.0:6006', '[::1]:6006'. */
export function parseListenAddress(flag: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]+):)?([^:]+)$/.exec(text.trim());
  if (!m)
    throw new DashboardError('ERR_DASHBOARD_OPTION', `${flag}: '${text}' is not [HOST:]PORT (e.g. 6006, 0.0.0.0:6006)`);
  return { host: m[1] ?? m[2] ?? DEFAULT_HOST, port: parsePort(flag, m[3]) };
}

/** Serves until SIGINT or SIGTERM, then closes the server (the open pages see the stream end). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
    const on = (sig: NodeJS.Signals) => {
      for (const s of signals) process.off(s, on);
      resolve(sig);
    };
    for (const s of signals) process.on(s, on);
  });
}

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description("serve a live web page of a run's curves and events from <run-dir>/log.jsonl (read-only)")
    .argument('<run-dir>', 'the run directory (run.dir) holding log.jsonl')
    .option('--host <address>', 'address to listen on (loopback unless you name another)', DEFAULT_HOST)
    .option('--port <port>', 'port to listen on (0 = any free port)', String(DEFAULT_PORT))
    .option('--wait', 'serve even before the run has written log.jsonl, and show it when it appears')
    .action(async (runDir: string, o: { host: string; port: string; wait?: boolean }) => {
      const dashboard = await startDashboard({ runDir, host: o.host, port: parsePort('--port', o.port), wait: o.wait });
      process.stdout.write(`paratrain: dashboard of ${runDir} at ${dashboard.url} (Ctrl-C to stop)\n`);
      await untilSignal();
      await dashboard.close();
    });
}
