// server.ts — the dashboard's HTTP server (node:http, nothing else): one page, its scripts and
// style, uPlot's two files, an empty favicon, a JSON snapshot of the run's records and a
// server-sent-event stream that pushes new records as the logs grow. Read-only by construction: GET/HEAD only, a fixed table of
// paths (no file is looked up from a URL, so there is nothing to traverse), and nothing the page
// sends reaches the run. docs/dashboard.md describes the endpoints and the security stance.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

import { RankLogs } from './rank-logs';
import { parseLogLine, parseRankLine, type DashboardRecord } from './records';
import { LogTail } from './tail';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 6006;

export class DashboardError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface DashboardOptions {
  runDir: string;
  host?: string;
  port?: number;
  /** Serve even when log.jsonl is not there yet (a run that is starting); else a DashboardError. */
  wait?: boolean;
  /** How often the log is polled for new lines (ms). */
  pollMs?: number;
  /** The flag that set the port, for the error when it is taken: '--port' (default), '--dashboard'. */
  portFlag?: string;
}

export interface Dashboard {
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

interface Asset {
  type: string;
  body: Buffer;
}

// The page is plain files in src/dashboard/page/, which the build copies to dist/dashboard/page/
// unchanged (no bundler, nothing for a user to build); uPlot comes from its npm package.
function loadAssets(): Map<string, Asset> {
  const page = path.join(__dirname, 'page');
  const uplot = path.dirname(require.resolve('uplot'));
  const files: Array<[string, string, string]> = [
    ['/', path.join(page, 'index.html'), 'text/html; charset=utf-8'],
    ['/dashboard.js', path.join(page, 'dashboard.js'), 'text/javascript; charset=utf-8'],
    ['/downsample.js', path.join(page, 'downsample.js'), 'text/javascript; charset=utf-8'],
    ['/dashboard.css', path.join(page, 'dashboard.css'), 'text/css; charset=utf-8'],
    ['/uplot.js', path.join(uplot, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    ['/uplot.css', path.join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  return new Map(files.map(([url, file, type]) => [url, { type, body: fs.readFileSync(file) }]));
}

/** True for 127.0.0.0/8, ::1 and 'localhost'. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return net.isIPv6(host) && (host === '::1' || host.replace(/^::ffff:/, '').startsWith('127.'));
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The records of one log, and the open streams with how many records each has been sent. */
class RunFeed {
  records: DashboardRecord[] = [];
  skipped = 0;
  readonly streams = new Map<http.ServerResponse, number>();

  add(line: string, eventsOnly: boolean): void {
    const r = parseLogLine(line, { eventsOnly });
    if (r) this.records.push(r);
    else if (r === undefined) this.skipped += 1; // malformed: a write cut short, or not a log
  }

  /** A rank log's line: its steps only (the rest is the worker's other output, never counted). */
  addRank(rank: number, line: string): void {
    const r = parseRankLine(line, rank);
    if (r) this.records.push(r);
  }

  /** Sends each stream the records it has not had, as one message; the SSE id is the count sent. */
  flush(): void {
    for (const [res, sent] of this.streams) {
      if (sent >= this.records.length) continue;
      res.write(`id: ${this.records.length}\ndata: ${JSON.stringify(this.records.slice(sent))}\n\n`);
      this.streams.set(res, this.records.length);
    }
  }

  reset(): void {
    this.records = [];
    this.skipped = 0;
    for (const res of this.streams.keys()) {
      res.write('event: reset\ndata: {}\n\n');
      this.streams.set(res, 0);
    }
  }
}

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'",
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const host = opts.host ?? DEFAULT_HOST;
  const port = opts.port ?? DEFAULT_PORT;
  const flag = opts.portFlag ?? '--port';
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new DashboardError('ERR_DASHBOARD_OPTION', `${flag}: '${opts.port}' is not a port number (0 to 65535)`);
  if (!fs.existsSync(opts.runDir) || !fs.statSync(opts.runDir).isDirectory())
    throw new DashboardError('ERR_DASHBOARD_RUN_DIR', `${opts.runDir} is not a directory`);
  const logFile = path.join(opts.runDir, 'log.jsonl');
  if (!opts.wait && !fs.existsSync(logFile))
    throw new DashboardError(
      'ERR_DASHBOARD_NO_LOG',
      `${opts.runDir} has no log.jsonl: is it a run directory (run.dir)? A run writes it when it starts; ` +
        'pass --wait to serve the page and wait for it',
    );

  const assets = loadAssets();
  const feed = new RunFeed();
  // Rank 0's log, and node 0's launcher log for a launched job's own events (joins, failures,
  // restarts). When any file is cut (a new run), all are read again from the top.
  const sources: Array<[string, boolean]> = [
    [logFile, false],
    [path.join(opts.runDir, 'logs', 'launcher-node-0.jsonl'), true],
  ];
  const restart = () => {
    feed.reset();
    for (const t of tails) t.rewind();
    rankLogs.rewind();
  };
  const tails: LogTail[] = sources.map(
    ([file, eventsOnly]) => new LogTail(file, (line) => feed.add(line, eventsOnly), restart),
  );
  // Each rank's own log, for the per-rank step time and memory.
  const rankLogs = new RankLogs(path.join(opts.runDir, 'logs'), (rank, line) => feed.addRank(rank, line), restart);
  for (const t of tails) t.start(opts.pollMs);
  rankLogs.start(opts.pollMs);
  // Push what the poll added; one timer for all open pages.
  const push = setInterval(() => feed.flush(), opts.pollMs ?? 250);
  push.unref();
  // A comment line now and then keeps proxies and the browser from closing an idle stream.
  const keepAlive = setInterval(() => {
    for (const res of feed.streams.keys()) res.write(': keep-alive\n\n');
  }, 15000);
  keepAlive.unref();

  const loopbackOnly = isLoopback(host);
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS, ...headers });
      res.end(req.method === 'HEAD' ? undefined : body + '\n');
    };
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(405, 'the dashboard is read-only: GET only', { Allow: 'GET, HEAD' });
    // Bound to loopback, answer only requests addressed to loopback: a web page elsewhere cannot
    // reach this server through a DNS name that it points at 127.0.0.1 (DNS rebinding).
    const hostName = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    if (loopbackOnly && !LOOPBACK_NAMES.has(hostName) && !isLoopback(hostName))
      return send(403, 'this dashboard answers requests for localhost only');
    const url = (req.url ?? '/').split('?')[0];
    const asset = assets.get(url);
    if (asset) {
      res.writeHead(200, { 'Content-Type': asset.type, ...SECURITY_HEADERS });
      return res.end(req.method === 'HEAD' ? undefined : asset.body);
    }
    if (url === '/records.json')
      return send(200, JSON.stringify({ skipped: feed.skipped, records: feed.records }), {
        'Content-Type': 'application/json',
      });
    // Browsers ask for an icon on their own; an empty answer keeps a 404 out of their console.
    if (url === '/favicon.ico') {
      res.writeHead(204, SECURITY_HEADERS);
      return res.end();
    }
    if (url === '/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', ...SECURITY_HEADERS, Connection: 'keep-alive' });
      if (req.method === 'HEAD') return res.end();
      // A reconnecting EventSource says how many records it has; a log that was cut restarts at 0.
      const last = Number(req.headers['last-event-id']);
      const from = Number.isInteger(last) && last >= 0 && last <= feed.records.length ? last : 0;
      if (from === 0 && Number.isInteger(last) && last > 0) res.write('event: reset\ndata: {}\n\n');
      res.write('retry: 2000\n\n');
      feed.streams.set(res, from);
      feed.flush();
      req.on('close', () => feed.streams.delete(res));
      return;
    }
    send(404, 'not found');
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      for (const t of tails) t.stop();
      rankLogs.stop();
      clearInterval(push);
      clearInterval(keepAlive);
      if (err.code === 'EADDRINUSE')
        reject(
          new DashboardError(
            'ERR_DASHBOARD_PORT',
            `port ${port} on ${host} is in use: choose another with ${flag} (port 0 picks a free one)`,
          ),
        );
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND')
        reject(new DashboardError('ERR_DASHBOARD_HOST', `cannot listen on ${host}: not an address of this machine`));
      else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = (server.address() as net.AddressInfo).port;
  const shown = net.isIPv6(host) ? `[${host}]` : host;
  return {
    url: `http://${shown}:${bound}/`,
    host,
    port: bound,
    async close() {
      for (const t of tails) t.stop();
      rankLogs.stop();
      clearInterval(push);
      clearInterval(keepAlive);
      for (const res of feed.streams.keys()) res.end();
      feed.streams.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
