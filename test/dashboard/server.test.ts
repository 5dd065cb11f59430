// The dashboard's HTTP surface without a browser: what it serves, what it refuses (other paths,
// traversal, anything but GET, foreign Host headers), where it listens by default, and the stream
// that pushes lines appended to the log. The page itself is tested in dashboard.test.ts.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseListenAddress } from '../../src/dashboard/listen-address';
import { parseLogLine, parseRankLine } from '../../src/dashboard/records';
import { startDashboard, type Dashboard } from '../../src/dashboard/server';

const root = path.join(__dirname, '..', '..');

const stepLine = (step: number) =>
  JSON.stringify({
    level: 30,
    time: '2026-01-01T00:00:00.000Z',
    step,
    loss: 10 - step,
    losses: { mlm: 9 - step, nsp: 0.7 },
    lr: 0.001,
    grad_norm: 2,
    tokens_per_s: 3000,
    mfu: 0.4,
    step_ms: 700,
    msg: `step ${step}`,
  });

/** A request exactly as written (fetch would normalise `/../` away before sending it). */
function raw(
  port: number,
  reqPath: string,
  opts: { method?: string; host?: string } = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: reqPath,
        method: opts.method ?? 'GET',
        headers: opts.host ? { host: opts.host } : {},
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function tmpRun(lines: string[] | undefined): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-dashboard-'));
  if (lines) fs.writeFileSync(path.join(dir, 'log.jsonl'), lines.map((l) => l + '\n').join(''));
  return dir;
}

describe('parseLogLine', () => {
  it('keeps steps, evals and events in the shape the page draws, and skips what is not a record', () => {
    expect(parseLogLine(stepLine(3))).toMatchObject({ kind: 'step', step: 3, loss: 7, losses: { mlm: 6 }, mfu: 0.4 });
    expect(parseLogLine('{"event":"eval","step":5,"eval_loss":4.5,"eval_losses":{"mlm":4}}')).toEqual({
      kind: 'eval',
      step: 5,
      loss: 4.5,
      losses: { mlm: 4 },
    });
    expect(parseLogLine('{"level":30,"event":"checkpoint","step":5,"msg":"saved"}')).toMatchObject({
      kind: 'event',
      event: 'checkpoint',
      step: 5,
      level: 'info',
    });
    expect(parseLogLine('{"level":50,"msg":"worker 1 died"}')).toMatchObject({ event: 'error', level: 'error' });
    for (const bad of ['{"step":1', 'not json', '[1,2]', 'null']) expect(parseLogLine(bad), bad).toBeUndefined();
    // A record, but none the page shows.
    expect(parseLogLine('{"step":"1","loss":2}')).toBeNull();
    expect(parseLogLine(stepLine(1), { eventsOnly: true })).toBeNull();
  });
});

describe('paratrain dashboard over HTTP', () => {
  let run: string;
  let dash: Dashboard;

  beforeAll(async () => {
    run = tmpRun([
      '{"level":30,"event":"start","msg":"training"}',
      stepLine(1),
      '{"step": 2, "loss": ', // a line cut short
      'garbage',
      stepLine(2),
    ]);
    dash = await startDashboard({ runDir: run, port: 0, pollMs: 50 });
  });
  afterAll(async () => {
    await dash?.close();
    fs.rmSync(run, { recursive: true, force: true });
  });

  it('listens on loopback unless told otherwise and prints a URL there', () => {
    expect(dash.host).toBe('127.0.0.1');
    expect(dash.url).toBe(`http://127.0.0.1:${dash.port}/`);
  });

  it('serves the page, its script and style, uPlot and the records; malformed lines are skipped', async () => {
    for (const [p, type] of [
      ['/', 'text/html'],
      ['/dashboard.js', 'text/javascript'],
      ['/downsample.js', 'text/javascript'],
      ['/dashboard.css', 'text/css'],
      ['/uplot.js', 'text/javascript'],
      ['/uplot.css', 'text/css'],
    ]) {
      const r = await raw(dash.port, p);
      expect(r.status, p).toBe(200);
      expect(r.headers['content-type']).toContain(type);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    }
    const r = JSON.parse((await raw(dash.port, '/records.json')).body);
    expect(r.skipped).toBe(2);
    expect(r.records.map((x: { kind: string }) => x.kind)).toEqual(['event', 'step', 'step']);
  });

  it('answers 404 to any other path, traversal included: no file is looked up from a URL', async () => {
    for (const p of [
      '/nope',
      '/log.jsonl',
      '/../log.jsonl',
      '/%2e%2e/log.jsonl',
      '/dashboard.js/../../package.json',
      '/../../../../etc/passwd',
      '//etc/passwd',
      '/node_modules/uplot/package.json',
      '/page/',
    ])
      expect((await raw(dash.port, p)).status, p).toBe(404);
  });

  it('refuses every method but GET and HEAD', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const r = await raw(dash.port, '/', { method });
      expect(r.status, method).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
    }
    expect((await raw(dash.port, '/', { method: 'HEAD' })).status).toBe(200);
  });

  it('on loopback, refuses requests for another host name (DNS rebinding)', async () => {
    expect((await raw(dash.port, '/', { host: 'evil.example:80' })).status).toBe(403);
    expect((await raw(dash.port, '/', { host: `localhost:${dash.port}` })).status).toBe(200);
  });

  it('streams the records, then each line appended to the log', async () => {
    const messages: unknown[][] = [];
    const req = http.get({ host: '127.0.0.1', port: dash.port, path: '/events' });
    const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
    expect(res.headers['content-type']).toBe('text/event-stream');
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const data = buf
          .slice(0, end)
          .split('\n')
          .find((l) => l.startsWith('data: '));
        if (data) messages.push(JSON.parse(data.slice(6)));
        buf = buf.slice(end + 2);
      }
    });
    await expect.poll(() => messages.length).toBe(1);
    expect(messages[0]).toHaveLength(3);
    fs.appendFileSync(path.join(run, 'log.jsonl'), stepLine(3) + '\n' + stepLine(4).slice(0, 20));
    await expect.poll(() => messages.length).toBe(2);
    expect(messages[1]).toMatchObject([{ kind: 'step', step: 3 }]);
    // The half-written line waits for its end.
    fs.appendFileSync(path.join(run, 'log.jsonl'), stepLine(4).slice(20) + '\n');
    await expect.poll(() => messages.length).toBe(3);
    expect(messages[2]).toMatchObject([{ kind: 'step', step: 4, loss: 6 }]);
    req.destroy();
  });
});

describe('paratrain dashboard of a launched job', () => {
  it("adds the launcher log's events (joins, failures, restarts), not its merged steps", async () => {
    const dir = tmpRun([stepLine(1)]);
    fs.mkdirSync(path.join(dir, 'logs'));
    fs.writeFileSync(
      path.join(dir, 'logs', 'launcher-node-0.jsonl'),
      [
        '{"level":30,"time":"t1","component":"coordinator","msg":"node 0 joined"}',
        JSON.stringify({ ...JSON.parse(stepLine(1)), dpRanks: 2 }),
        '{"level":50,"time":"t2","component":"coordinator","msg":"rank 1 exited with code 9"}',
        '{"level":30,"time":"t3","msg":"node 0: every worker finished"}',
      ].join('\n') + '\n',
    );
    const dash = await startDashboard({ runDir: dir, port: 0, pollMs: 50 });
    try {
      const { records, skipped } = JSON.parse((await raw(dash.port, '/records.json')).body);
      expect(skipped).toBe(0);
      expect(records.filter((r: { kind: string }) => r.kind === 'step')).toHaveLength(1);
      expect(records.filter((r: { kind: string }) => r.kind === 'event')).toEqual([
        { kind: 'event', event: 'coordinator', time: 't1', level: 'info', msg: 'node 0 joined' },
        { kind: 'event', event: 'coordinator', time: 't2', level: 'error', msg: 'rank 1 exited with code 9' },
        { kind: 'event', event: 'launcher', time: 't3', level: 'info', msg: 'node 0: every worker finished' },
      ]);
    } finally {
      await dash.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("paratrain dashboard of a launched job's rank logs", () => {
  const rankStep = (step: number, stepMs: number, rssMb: number) =>
    JSON.stringify({ ...JSON.parse(stepLine(step)), step_ms: stepMs, dp_wait_ms: 1.5, rss_mb: rssMb });

  it('parseRankLine: a step line gives the rank, step time, wait and memory; any other line nothing', () => {
    expect(parseRankLine(rankStep(4, 812, 433), 3)).toEqual({
      kind: 'rank',
      rank: 3,
      step: 4,
      step_ms: 812,
      dp_wait_ms: 1.5,
      rss_mb: 433,
      tokens_per_s: 3000,
    });
    expect(parseRankLine('=== paratrain worker rank 3 (local rank 1) started 2026-01-01T00:00:00.000Z', 3)).toBeNull();
    expect(parseRankLine('{"level":30,"event":"start","msg":"training"}', 3)).toBeNull();
    expect(parseRankLine('{"step":4, cut sh', 3)).toBeNull();
  });

  it('follows each logs/rank-NNNNN.log, one that appears later included, and pushes their steps', async () => {
    const dir = tmpRun([stepLine(1)]);
    const logs = path.join(dir, 'logs');
    fs.mkdirSync(logs);
    const banner = (rank: number) => `=== paratrain worker rank ${rank} (local rank ${rank}) started t0`;
    fs.writeFileSync(
      path.join(logs, 'rank-00000.log'),
      [banner(0), rankStep(1, 700, 410), 'Error: a stack'].join('\n') + '\n',
    );
    fs.writeFileSync(path.join(logs, 'rank-00001.log'), [banner(1), rankStep(1, 745, 520)].join('\n') + '\n');
    fs.writeFileSync(path.join(logs, 'rank-00001.log.old'), rankStep(1, 1, 1) + '\n'); // not a rank log
    const dash = await startDashboard({ runDir: dir, port: 0, pollMs: 50 });
    const ranks = async () =>
      JSON.parse((await raw(dash.port, '/records.json')).body).records.filter(
        (r: { kind: string }) => r.kind === 'rank',
      );
    try {
      const first = JSON.parse((await raw(dash.port, '/records.json')).body);
      expect(first.skipped).toBe(0); // a rank log's other lines are not malformed records
      expect(await ranks()).toEqual([
        { kind: 'rank', rank: 0, step: 1, step_ms: 700, dp_wait_ms: 1.5, rss_mb: 410, tokens_per_s: 3000 },
        { kind: 'rank', rank: 1, step: 1, step_ms: 745, dp_wait_ms: 1.5, rss_mb: 520, tokens_per_s: 3000 },
      ]);
      fs.appendFileSync(path.join(logs, 'rank-00001.log'), rankStep(2, 760, 525) + '\n');
      fs.writeFileSync(path.join(logs, 'rank-00002.log'), [banner(2), rankStep(2, 790, 530)].join('\n') + '\n');
      await expect
        .poll(async () =>
          (await ranks()).map((r: { rank: number; step: number; step_ms: number }) => [r.rank, r.step, r.step_ms]),
        )
        .toEqual([
          [0, 1, 700],
          [1, 1, 745],
          [1, 2, 760],
          [2, 2, 790],
        ]);
    } finally {
      await dash.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('paratrain dashboard: what it refuses to start with', () => {
  it('a run directory without log.jsonl: a clear error, exit 1 (unless --wait)', () => {
    const dir = tmpRun(undefined);
    const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), 'dashboard', dir, '--port', '0'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('ERR_DASHBOARD_NO_LOG');
    expect(r.stderr).toContain(`${dir} has no log.jsonl`);
    expect(r.stderr).toContain('--wait');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--wait serves at once and shows the log when the run writes it, and again when it restarts', async () => {
    const dir = tmpRun(undefined);
    const dash = await startDashboard({ runDir: dir, port: 0, wait: true, pollMs: 50 });
    try {
      expect(JSON.parse((await raw(dash.port, '/records.json')).body).records).toEqual([]);
      fs.writeFileSync(path.join(dir, 'log.jsonl'), stepLine(1) + '\n');
      await expect.poll(async () => JSON.parse((await raw(dash.port, '/records.json')).body).records.length).toBe(1);
      // A new run in the same directory starts the log again: so does the page.
      fs.writeFileSync(path.join(dir, 'log.jsonl'), '{"event":"start","msg":"again"}\n');
      await expect
        .poll(async () => JSON.parse((await raw(dash.port, '/records.json')).body).records)
        .toMatchObject([{ kind: 'event', event: 'start', msg: 'again' }]);
    } finally {
      await dash.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a port in use: an error that names the port and --port', async () => {
    const dir = tmpRun([stepLine(1)]);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(startDashboard({ runDir: dir, port })).rejects.toMatchObject({
        code: 'ERR_DASHBOARD_PORT',
        message: expect.stringMatching(new RegExp(`port ${port} .*in use.*--port`)),
      });
      // train/launch --dashboard name their own flag.
      await expect(startDashboard({ runDir: dir, port, portFlag: '--dashboard' })).rejects.toThrow(
        new RegExp(`port ${port} .*in use.*--dashboard`),
      );
    } finally {
      blocker.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('paratrain train|launch --dashboard [HOST:]PORT', () => {
  it('parses the address: a port alone is on loopback', () => {
    expect(parseListenAddress('--dashboard', '6006')).toEqual({ host: '127.0.0.1', port: 6006 });
    expect(parseListenAddress('--dashboard', '0.0.0.0:0')).toEqual({ host: '0.0.0.0', port: 0 });
    expect(parseListenAddress('--dashboard', '[::1]:7000')).toEqual({ host: '::1', port: 7000 });
    for (const bad of ['', 'x', '::1:80', 'host:', 'host:70000', '1.2.3.4:-1'])
      expect(() => parseListenAddress('--dashboard', bad), bad).toThrow(/--dashboard/);
  });

  const tinyRun = (dir: string) =>
    [
      'model.layers=1',
      'model.hidden=32',
      'model.heads=2',
      'model.ffn=64',
      'model.vocab_size=800',
      'model.seq_len=32',
      'train.micro_batch=4',
      'train.steps=300',
      'train.log_every=1',
      'train.eval_every=0',
      'checkpoint.every=0',
      'data.max_documents=30',
      `data.cache_dir=${path.join(os.tmpdir(), 'paratrain-test-cache')}`,
      `run.dir=${dir}`,
    ].flatMap((kv) => ['--set', kv]);

  /** Runs `paratrain ARGS --dashboard 0`; while it runs, reads the page's records; returns the steps seen. */
  async function stepsSeenWhileRunning(args: string[], urlLine: RegExp): Promise<number> {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'paratrain.js'), ...args, '--dashboard', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PARATRAIN_NUM_THREADS: '1' },
    });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await expect.poll(() => urlLine.exec(output)?.[1], { timeout: 60000 }).toBeTruthy();
      const port = Number(urlLine.exec(output)![1]);
      let steps = 0;
      while (steps === 0 && child.exitCode === null) {
        try {
          const r = JSON.parse((await raw(port, '/records.json')).body) as { records: { kind: string }[] };
          steps = r.records.filter((x) => x.kind === 'step').length;
        } catch {
          break; // closed: the run ended
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await exited, output.slice(-2000)).toBe(0);
      await expect(raw(port, '/')).rejects.toThrow(); // closed with the run
      return steps;
    } finally {
      child.kill();
    }
  }

  it('train: serves the page of the run being trained, in the same process, and closes when it ends', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-train-dashboard-'));
    try {
      const args = ['train', '--config', 'bert-mini', ...tinyRun(dir)];
      expect(
        await stepsSeenWhileRunning(args, /dashboard of this run at http:\/\/127\.0\.0\.1:(\d+)\//),
      ).toBeGreaterThan(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("launch: node 0 serves the job's page (rank 0's steps) and closes it when the job ends", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-launch-dashboard-'));
    try {
      const args = [
        'launch',
        '--nproc-per-node',
        '2',
        '--master-port',
        '29763',
        '--config',
        'bert-mini',
        ...tinyRun(dir),
      ];
      expect(
        await stepsSeenWhileRunning(args, /dashboard of this job at http:\/\/127\.0\.0\.1:(\d+)\//),
      ).toBeGreaterThan(0);
      const events = fs.readFileSync(path.join(dir, 'logs', 'launcher-node-0.jsonl'), 'utf8');
      expect(events).toContain('"event":"dashboard"');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
