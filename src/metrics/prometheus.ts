// prometheus.ts — a run's figures for a cluster's monitoring (Prometheus, then Grafana): the same
// log the dashboard follows (<run.dir>/log.jsonl, and for a launched job node 0's launcher log for
// its events), turned into gauges and counters in Prometheus's exposition format by prom-client,
// and served at GET /metrics. Read-only and loopback by default, like the dashboard.
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';

import { parseLogLine } from '../dashboard/records';
import { LogTail } from '../dashboard/tail';

export class MetricsError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The gauges and counters of one run, fed one log line at a time. */
export class RunMetrics {
  readonly registry = new Registry();
  private readonly step = this.gauge('paratrain_step', 'the last optimizer step the run logged');
  private readonly loss = this.gauge(
    'paratrain_loss',
    'training loss of the last step: the objective and each named loss',
    ['loss'],
  );
  private readonly evalLoss = this.gauge('paratrain_eval_loss', 'loss of the last evaluation', ['loss']);
  private readonly lr = this.gauge('paratrain_learning_rate', 'learning rate of the last step');
  private readonly gradNorm = this.gauge(
    'paratrain_grad_norm',
    'global gradient norm of the last step, before clipping',
  );
  private readonly tokens = this.gauge(
    'paratrain_tokens_per_second',
    'training throughput of the last step (one rank)',
  );
  private readonly mfu = this.gauge('paratrain_mfu_ratio', 'model FLOPs utilisation of the last step (0..1)');
  private readonly stepSeconds = this.gauge('paratrain_step_seconds', 'wall time of the last step');
  private readonly dpWait = this.gauge(
    'paratrain_dp_wait_seconds',
    'time the last step waited for data-parallel gradient buckets after backward',
  );
  private readonly lossScale = this.gauge('paratrain_loss_scale', 'loss scale of the last step (when scaling is on)');
  private readonly skippedSteps = this.gauge(
    'paratrain_skipped_steps',
    'updates skipped since step 0 (gradient overflows, non-finite losses)',
  );
  private readonly steps = new Counter({
    name: 'paratrain_steps_logged_total',
    help: 'step records read from the log (a resumed run logs some steps again)',
    registers: [this.registry],
  });
  private readonly events = new Counter({
    name: 'paratrain_events_total',
    help: 'run events by kind: start, checkpoint, resume, restart, stopped, …',
    labelNames: ['event'],
    registers: [this.registry],
  });
  private readonly problems = new Counter({
    name: 'paratrain_log_problems_total',
    help: 'warning and error lines in the log',
    labelNames: ['level'],
    registers: [this.registry],
  });
  /** Lines that were not JSON objects (a write cut short), skipped. */
  skipped = 0;

  private gauge(name: string, help: string, labelNames: string[] = []): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  /** One line of log.jsonl; `launcher`: a line of the launcher's log, whose steps repeat rank 0's. */
  add(line: string, launcher = false): void {
    const r = parseLogLine(line, { eventsOnly: launcher });
    if (r === undefined) this.skipped++;
    if (!r) return;
    if (r.kind === 'step') {
      this.steps.inc();
      this.step.set(r.step);
      this.loss.set({ loss: 'total' }, r.loss);
      for (const [name, value] of Object.entries(r.losses)) this.loss.set({ loss: name }, value);
      if (r.lr !== undefined) this.lr.set(r.lr);
      if (r.grad_norm !== undefined) this.gradNorm.set(r.grad_norm);
      if (r.tokens_per_s !== undefined) this.tokens.set(r.tokens_per_s);
      if (r.mfu !== undefined) this.mfu.set(r.mfu);
      if (r.step_ms !== undefined) this.stepSeconds.set(r.step_ms / 1000);
      if (r.dp_wait_ms !== undefined) this.dpWait.set(r.dp_wait_ms / 1000);
      if (r.loss_scale !== undefined) this.lossScale.set(r.loss_scale);
      if (r.skipped_steps !== undefined) this.skippedSteps.set(r.skipped_steps);
    } else if (r.kind === 'eval') {
      this.evalLoss.set({ loss: 'total' }, r.loss);
      for (const [name, value] of Object.entries(r.losses)) this.evalLoss.set({ loss: name }, value);
    } else {
      if (r.level !== 'info') this.problems.inc({ level: r.level });
      else this.events.inc({ event: r.event });
    }
  }
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves GET /metrics for the run in `runDir` on host:port (default loopback; port 0: any free
 * one), following its log as it grows. `portFlag` names the flag in the error when the port is taken.
 */
export async function startMetricsServer(opts: {
  runDir: string;
  host?: string;
  port: number;
  pollMs?: number;
  portFlag?: string;
}): Promise<MetricsServer> {
  const host = opts.host ?? '127.0.0.1';
  const metrics = new RunMetrics();
  const tails = [
    new LogTail(path.join(opts.runDir, 'log.jsonl'), (l) => metrics.add(l)),
    new LogTail(path.join(opts.runDir, 'logs', 'launcher-node-0.jsonl'), (l) => metrics.add(l, true)),
  ];
  for (const t of tails) t.start(opts.pollMs ?? 1000);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
      return res.end('read-only: GET /metrics\n');
    }
    if (url !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      return res.end('not found: the metrics are at /metrics\n');
    }
    for (const t of tails) t.poll(); // the scrape sees every line written so far
    void metrics.registry.metrics().then((body) => {
      res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      for (const t of tails) t.stop();
      reject(
        err.code === 'EADDRINUSE'
          ? new MetricsError(
              'ERR_METRICS_PORT',
              `port ${opts.port} on ${host} is in use: choose another with ${opts.portFlag ?? '--metrics-port'} ` +
                '(port 0 picks a free one)',
            )
          : err,
      );
    });
    server.listen(opts.port, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://${net.isIPv6(host) ? `[${host}]` : host}:${port}/metrics`,
    async close() {
      for (const t of tails) t.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
