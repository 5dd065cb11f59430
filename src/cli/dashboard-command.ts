// dashboard-command.ts — `paratrain dashboard RUN_DIR`: serves the live page of a run (going on or
// finished) from its log.jsonl until Ctrl-C. The server is src/dashboard/; docs/dashboard.md
// describes it. Bad flags are DashboardErrors; main.ts prints them.
import type { Command } from 'commander';

import { parsePort } from '../dashboard/listen-address';
import { DEFAULT_HOST, DEFAULT_PORT, startDashboard } from '../dashboard/server';

/** Serves until SIGINT or SIGTERM, then closes the server (the open pages see the stream end). */
function untilSignal(): Promise<NodeJS.Signals> {
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
