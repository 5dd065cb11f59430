// progress.ts — what the launcher shows: its own events and, on node 0, one merged line per step
// (every data-parallel rank's report combined) — as JSON lines on stdout and in
// <run.dir>/logs/launcher-node-R.jsonl, or, on a terminal, readable lines above a progress bar.
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { MultiBar, SingleBar } from 'cli-progress';
import pino from 'pino';

import type { CoordinatorEvent } from '../coordinator/coordinator';
import type { NamedValue, StepReport } from '../control/messages';
import { stdoutLogStream } from '../train/log';

/** One step of the whole job: the data-parallel ranks' reports combined. */
export interface MergedStep extends StepReport {
  dpRanks: number;
}

/**
 * Collects each DP rank's report of a step; once all dpSize have reported it, returns the merge.
 * Losses are averaged (each rank saw its own slice of the global batch), throughput summed, step
 * time is the slowest rank's.
 */
export class StepMerger {
  private readonly pending = new Map<number, Map<number, StepReport>>();

  constructor(private readonly dpSize: number) {}

  add(dpRank: number, r: StepReport): MergedStep | undefined {
    const byRank = this.pending.get(r.step) ?? new Map<number, StepReport>();
    this.pending.set(r.step, byRank);
    byRank.set(dpRank, r);
    if (byRank.size < this.dpSize) return undefined;
    for (const step of this.pending.keys()) if (step <= r.step) this.pending.delete(step);
    const all = [...byRank.values()];
    const first = byRank.get(0) ?? all[0];
    const mean = (f: (x: StepReport) => number) => all.reduce((s, x) => s + f(x), 0) / all.length;
    // Named figures by name, in the first report's order (every rank reports the same names).
    const meanNamed = (f: (x: StepReport) => NamedValue[]): NamedValue[] =>
      f(first).map(({ name }) => ({
        name,
        value: mean((x) => f(x).find((v) => v.name === name)?.value ?? 0),
      }));
    const evals = all.filter((x) => x.evalLoss !== undefined);
    return {
      step: r.step,
      totalSteps: first.totalSteps,
      loss: mean((x) => x.loss),
      losses: meanNamed((x) => x.losses),
      metrics: meanNamed((x) => x.metrics),
      gradNorm: first.gradNorm,
      lr: first.lr,
      tokensPerS: all.reduce((s, x) => s + x.tokensPerS, 0),
      stepMs: Math.max(...all.map((x) => x.stepMs)),
      skipped: all.some((x) => x.skipped),
      consumedSamples: Math.max(...all.map((x) => x.consumedSamples)),
      ...(evals.length ? { evalLoss: evals.reduce((s, x) => s + x.evalLoss!, 0) / evals.length } : {}),
      dpRanks: all.length,
    };
  }
}

export interface LauncherViewOptions {
  runDir: string;
  nodeRank: number;
  totalSteps: number;
  dpSize: number;
  /** Log a merged step every N steps (the bar moves every step). */
  logEvery: number;
  tty?: boolean;
}

export class LauncherView {
  readonly log: pino.Logger;
  private merger: StepMerger;
  private readonly file: pino.DestinationStream & { flushSync(): void };
  private multibar: MultiBar | undefined;
  private bar: SingleBar | undefined;

  constructor(private readonly opts: LauncherViewOptions) {
    this.merger = new StepMerger(opts.dpSize);
    const logDir = path.join(opts.runDir, 'logs');
    fs.mkdirSync(logDir, { recursive: true });
    this.file = pino.destination({
      dest: path.join(logDir, `launcher-node-${opts.nodeRank}.jsonl`),
      sync: true,
      append: true,
    });
    const streams: pino.StreamEntry[] = [{ stream: this.file }];
    const out = stdoutLogStream(
      opts.tty ?? !!process.stdout.isTTY,
      ' {bar} {value}/{total} steps | loss {loss} | {tps} tok/s | eta {eta_formatted}',
    );
    streams.push(out.stream);
    this.multibar = out.multibar;
    this.log = pino(
      { base: { node: opts.nodeRank }, timestamp: pino.stdTimeFunctions.isoTime },
      pino.multistream(streams),
    );
  }

  /** Node 0: what the coordinator reports (it logs joins, refusals, failures and restarts itself). */
  onCoordinatorEvent(e: CoordinatorEvent): void {
    if (e.type === 'started') {
      this.bar = this.multibar?.create(this.opts.totalSteps, e.resumeStep ?? 0, { loss: '-', tps: '-' });
    }
    if (e.type === 'restarting') {
      // The failed round's bar and half-merged steps go; the next round starts a new bar.
      if (this.bar) this.multibar?.remove(this.bar);
      this.bar = undefined;
      this.merger = new StepMerger(this.opts.dpSize);
    }
    if (e.type === 'step') {
      const merged = this.merger.add(e.dpRank, e.report);
      if (merged) this.showStep(merged);
    }
  }

  private showStep(s: MergedStep): void {
    if (this.bar && this.bar.getTotal() !== s.totalSteps) this.bar.setTotal(s.totalSteps);
    this.bar?.update(s.step, { loss: s.loss.toFixed(4), tps: Math.round(s.tokensPerS) });
    if (s.step % this.opts.logEvery !== 0 && s.step !== s.totalSteps && s.evalLoss === undefined) return;
    const evalPart = s.evalLoss !== undefined ? ` eval ${s.evalLoss.toFixed(4)}` : '';
    const parts = s.losses.length > 1 ? ` (${s.losses.map((l) => `${l.name} ${l.value.toFixed(4)}`).join(', ')})` : '';
    const { losses, metrics, ...rest } = s;
    const named = (list: NamedValue[]) => Object.fromEntries(list.map((v) => [v.name, v.value]));
    this.log.info(
      { ...rest, losses: named(losses), ...(metrics.length ? { metrics: named(metrics) } : {}) },
      `step ${s.step}/${s.totalSteps} loss ${s.loss.toFixed(4)}${parts}${evalPart} lr ${s.lr.toExponential(3)} ` +
        `${Math.round(s.tokensPerS)} tok/s ${s.stepMs.toFixed(0)} ms${s.skipped ? ' (skipped)' : ''}`,
    );
  }

  close(): void {
    this.multibar?.stop();
    this.file.flushSync();
  }
}
