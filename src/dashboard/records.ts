// records.ts — the dashboard's view of a run log (<run.dir>/log.jsonl, src/train/log.ts): each line
// becomes a step, an eval or an event record, trimmed to what the page draws, so the browser gets
// one small shape and never the whole log line. Lines that are not JSON objects are skipped. A
// launched job's per-rank logs (<run.dir>/logs/rank-NNNNN.log) give rank records: each rank's step
// time and memory.

export interface StepPoint {
  kind: 'step';
  step: number;
  loss: number;
  losses: Record<string, number>;
  lr?: number;
  grad_norm?: number;
  tokens_per_s?: number;
  mfu?: number;
  step_ms?: number;
  dp_wait_ms?: number;
  rss_mb?: number;
  /** Loss scaling: the scale the step ran with (only when scaling is on), updates skipped so far. */
  loss_scale?: number;
  skipped_steps?: number;
}

export interface EvalPoint {
  kind: 'eval';
  step: number;
  loss: number;
  losses: Record<string, number>;
}

export interface RunEvent {
  kind: 'event';
  event: string;
  time?: string;
  step?: number;
  level: 'info' | 'warn' | 'error';
  msg: string;
}

/** One rank's step, from its own log: what differs between ranks (time, waits, memory). */
export interface RankPoint {
  kind: 'rank';
  rank: number;
  step: number;
  step_ms?: number;
  dp_wait_ms?: number;
  rss_mb?: number;
  tokens_per_s?: number;
}

/** What a line of log.jsonl (or the launcher's log) becomes. */
export type LogRecord = StepPoint | EvalPoint | RunEvent;

export type DashboardRecord = LogRecord | RankPoint;

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function numbers(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (isNumber(x)) out[k] = x;
  return out;
}

function optionalNumbers<K extends string>(r: Record<string, unknown>, keys: readonly K[]): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const k of keys) if (isNumber(r[k])) out[k] = r[k] as number;
  return out;
}

const STEP_FIELDS = [
  'lr',
  'grad_norm',
  'tokens_per_s',
  'mfu',
  'step_ms',
  'dp_wait_ms',
  'rss_mb',
  'loss_scale',
  'skipped_steps',
] as const;

// pino's numeric levels: 40 warn, 50 error and above.
function levelName(level: unknown): RunEvent['level'] {
  if (!isNumber(level) || level < 40) return 'info';
  return level < 50 ? 'warn' : 'error';
}

/**
 * One log line as a dashboard record: undefined for a malformed line (not a JSON object), null for
 * a record the page does not show.
 * `eventsOnly` (the launcher's log, whose step lines repeat rank 0's): its other lines are events,
 * named by their `event`, else their `component` (coordinator, agent), else 'launcher'.
 */
export function parseLogLine(line: string, opts: { eventsOnly?: boolean } = {}): LogRecord | null | undefined {
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!r || typeof r !== 'object' || Array.isArray(r)) return undefined;
  const o = r as Record<string, unknown>;
  const msg = typeof o.msg === 'string' ? o.msg : '';
  const isStep = isNumber(o.step) && isNumber(o.loss) && o.event === undefined;
  if (opts.eventsOnly) {
    if (isStep) return null;
    const name = typeof o.event === 'string' ? o.event : typeof o.component === 'string' ? o.component : 'launcher';
    return event(o, name, msg);
  }
  if (o.event === 'eval' && isNumber(o.step) && isNumber(o.eval_loss))
    return { kind: 'eval', step: o.step, loss: o.eval_loss, losses: numbers(o.eval_losses) };
  if (typeof o.event === 'string' || levelName(o.level) !== 'info')
    return event(o, typeof o.event === 'string' ? o.event : levelName(o.level), msg);
  if (isStep)
    return {
      kind: 'step',
      step: o.step as number,
      loss: o.loss as number,
      losses: numbers(o.losses),
      ...optionalNumbers(o, STEP_FIELDS),
    };
  return null;
}

function event(o: Record<string, unknown>, name: string, msg: string): RunEvent {
  return {
    kind: 'event',
    event: name,
    ...(typeof o.time === 'string' ? { time: o.time } : {}),
    ...(isNumber(o.step) ? { step: o.step } : {}),
    level: levelName(o.level),
    msg,
  };
}

const RANK_FIELDS = ['step_ms', 'dp_wait_ms', 'rss_mb', 'tokens_per_s'] as const;

/**
 * A line of rank `rank`'s log as a rank record, or null for any other line. The file is the
 * worker's stdout and stderr as they came (src/launch/worker-process.ts): the launcher's banner
 * lines, the run log's JSON lines, and whatever else the process printed, none of which is an error.
 */
export function parseRankLine(line: string, rank: number): RankPoint | null {
  if (!line.startsWith('{')) return null;
  const r = parseLogLine(line);
  if (!r || r.kind !== 'step') return null;
  return { kind: 'rank', rank, step: r.step, ...optionalNumbers(r as unknown as Record<string, unknown>, RANK_FIELDS) };
}
