// Prometheus metrics of a run: the log's figures as gauges and counters in the exposition format,
// served read-only at /metrics, following the log as it grows; and the flags of train/launch.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { RunMetrics, startMetricsServer } from '../../src/metrics/prometheus';

const root = path.join(__dirname, '..', '..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-metrics-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const step = (n: number, loss: number) =>
  JSON.stringify({
    level: 30,
    step: n,
    loss,
    losses: { mlm: loss - 0.7, nsp: 0.7 },
    lr: 1e-3 * n,
    grad_norm: 2.5,
    tokens_per_s: 5000 + n,
    mfu: 0.25,
    step_ms: 400,
    dp_wait_ms: 12,
    loss_scale: 2 ** (17 - n),
    skipped_steps: n - 1,
    msg: `step ${n}`,
  });
const LINES = [
  JSON.stringify({ level: 30, event: 'start', msg: 'training bert' }),
  step(1, 11),
  step(2, 10.5),
  JSON.stringify({ level: 30, event: 'eval', step: 2, eval_loss: 10.25, eval_losses: { mlm: 9.5 }, msg: 'eval' }),
  JSON.stringify({ level: 30, event: 'checkpoint', step: 2, msg: 'saved' }),
  JSON.stringify({ level: 40, msg: 'a warning' }),
  '{"level":30,"step":3,"lo', // cut short
];

/** The exposition format read independently: `name{labels} value` lines, comments and blanks skipped. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

describe('Prometheus metrics', () => {
  it('turns the log into gauges and counters', async () => {
    const m = new RunMetrics();
    for (const l of LINES) m.add(l);
    m.add(JSON.stringify({ level: 30, component: 'coordinator', step: 9, loss: 1, msg: 'merged step' }), true);
    m.add(JSON.stringify({ level: 30, component: 'agent', msg: 'node 0 joined' }), true);
    const s = samples(await m.registry.metrics());
    expect(s.get('paratrain_step')).toBe(2);
    expect(s.get('paratrain_loss{loss="total"}')).toBe(10.5);
    expect(s.get('paratrain_loss{loss="mlm"}')).toBeCloseTo(9.8, 12);
    expect(s.get('paratrain_loss{loss="nsp"}')).toBe(0.7);
    expect(s.get('paratrain_eval_loss{loss="total"}')).toBe(10.25);
    expect(s.get('paratrain_eval_loss{loss="mlm"}')).toBe(9.5);
    expect(s.get('paratrain_learning_rate')).toBe(0.002);
    expect(s.get('paratrain_tokens_per_second')).toBe(5002);
    expect(s.get('paratrain_mfu_ratio')).toBe(0.25);
    expect(s.get('paratrain_step_seconds')).toBe(0.4);
    expect(s.get('paratrain_dp_wait_seconds')).toBe(0.012);
    expect(s.get('paratrain_loss_scale')).toBe(32768);
    expect(s.get('paratrain_skipped_steps')).toBe(1);
    expect(s.get('paratrain_steps_logged_total')).toBe(2); // the launcher's merged step is not counted again
    expect(s.get('paratrain_events_total{event="start"}')).toBe(1);
    expect(s.get('paratrain_events_total{event="checkpoint"}')).toBe(1);
    expect(s.get('paratrain_events_total{event="agent"}')).toBe(1);
    expect(s.get('paratrain_log_problems_total{level="warn"}')).toBe(1);
    expect(m.skipped).toBe(1);
  });

  it('serves /metrics read-only on loopback, following the log as it grows', async () => {
    const run = fs.mkdtempSync(path.join(scratch, 'run-'));
    const log = path.join(run, 'log.jsonl');
    fs.writeFileSync(log, LINES.slice(0, 3).join('\n') + '\n');
    const server = await startMetricsServer({ runDir: run, port: 0 });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const r = await fetch(server.url);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(samples(await r.text()).get('paratrain_step')).toBe(2);
      fs.appendFileSync(log, step(3, 10) + '\n');
      expect(samples(await (await fetch(server.url)).text()).get('paratrain_step')).toBe(3); // a scrape reads what is new
      const base = server.url.replace(/\/metrics$/, '');
      expect((await fetch(`${base}/`)).status).toBe(404);
      expect((await fetch(`${base}/../log.jsonl`)).status).toBe(404);
      expect((await fetch(server.url, { method: 'POST' })).status).toBe(405);
      // A taken port is a clear error naming the flag.
      const port = Number(new URL(server.url).port);
      await expect(startMetricsServer({ runDir: run, port, portFlag: '--metrics-port' })).rejects.toMatchObject({
        code: 'ERR_METRICS_PORT',
        message: expect.stringContaining(`port ${port} on 127.0.0.1 is in use: choose another with --metrics-port`),
      });
    } finally {
      await server.close();
    }
  });

  it('paratrain train --metrics-port: a bad value or a taken port is refused before the run starts', async () => {
    const bin = path.join(root, 'bin', 'paratrain.js');
    const bad = spawnSync(process.execPath, [bin, 'train', '--config', 'bert-mini', '--metrics-port', 'nope'], {
      encoding: 'utf8',
    });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--metrics-port');
    // A port taken by someone else: the run does not start.
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const taken = (blocker.address() as net.AddressInfo).port;
    const dir = path.join(scratch, 'taken');
    const r = spawnSync(
      process.execPath,
      [bin, 'train', '--config', 'bert-mini', '--set', `run.dir=${dir}`, '--metrics-port', String(taken)],
      { encoding: 'utf8' },
    );
    blocker.close();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('[ERR_METRICS_PORT]');
    expect(fs.existsSync(path.join(dir, 'checkpoints'))).toBe(false);
  });
});
