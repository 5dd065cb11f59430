// peak.ts — the CPU's peak for MFU: the FLOP rate of a GEMM-bound probe (one wide GPT block on a
// tiny vocabulary, forward and backward, no optimizer) measured once per machine, thread count and
// OpenBLAS kernel set, and cached in the data cache directory. A CPU has no datasheet dense peak
// that its GEMMs reach; the probe measures what the engine's own matrix multiplies sustain.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { validateConfig } from '../config/load';
import { atomicWriteFile } from '../files/atomic-write';
import { createEngine } from './engine';
import { DEVICES, type Precision } from '../plan/devices';
import { loadNative } from './native';

export interface CpuPeak {
  /** FLOP/s of one engine with `threads` threads. */
  flops: number;
  threads: number;
  /** 'measured': now; 'cached': an earlier measurement on this machine. */
  source: 'measured' | 'cached';
}

// The probe: L1 H768 A12 F3072, vocabulary 128, 8 × 64 tokens — 7.2M parameters (115 MB with
// gradients and optimizer state, freed when it is collected), 22 GFLOP per forward+backward,
// dominated by [512 × 768] × [768 × 3072] GEMMs. Smaller ones ran 20% below this rate here, larger
// ones 8% above it at twice the memory.
const PROBE = { layers: 1, hidden: 768, heads: 12, ffn: 3072, vocab: 128, seq: 64, batch: 8 };
const PROBE_CALLS = 6; // the first is a warm-up; the best of the rest counts

/** The fastest of a few forward+backward passes of the probe, in model FLOP/s (PaLM's count). */
export async function measureCpuPeak(threads: number): Promise<number> {
  const p = PROBE;
  const c = validateConfig({
    model: {
      arch: 'gpt',
      layers: p.layers,
      hidden: p.hidden,
      heads: p.heads,
      ffn: p.ffn,
      vocab_size: p.vocab,
      seq_len: p.seq,
      dropout: 0,
    },
    train: { steps: 1, micro_batch: p.batch, lr: 1e-4, threads },
  });
  const engine = createEngine(c);
  engine.initParams(1);
  const N = p.batch * p.seq;
  const tokens = Int32Array.from({ length: N }, (_, i) => (i * 7919) % p.vocab);
  const labels = Int32Array.from({ length: N }, (_, i) => (i * 104729 + 1) % p.vocab);
  const batch = {
    batchSize: p.batch,
    seqLen: p.seq,
    tokens,
    labels,
    segments: null,
    attentionMask: null,
    pairLabels: null,
  };
  const flops = (6 * engine.numParams() + 12 * p.layers * p.seq * p.hidden) * N;
  let best = Infinity;
  for (let i = 0; i < PROBE_CALLS; i++) {
    const t0 = process.hrtime.bigint();
    await engine.forwardBackward([batch], { step: i });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (i > 0) best = Math.min(best, s);
  }
  return flops / best;
}

/** What the cache is keyed by: the CPU, its core count, the engine's threads, OpenBLAS's kernels, the probe. */
function peakKey(threads: number): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  const p = PROBE;
  return (
    `${cpu} | ${os.availableParallelism()} cores | ${threads} threads | OpenBLAS ${loadNative('cpu').blasCore} | ` +
    `probe H${p.hidden} F${p.ffn} ${p.batch}×${p.seq}`
  );
}

type PeakCache = Record<string, { flops: number; measured_at: string }>;

function readCache(file: string): PeakCache {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as PeakCache;
  } catch {
    return {}; // absent or unreadable: measure and rewrite it
  }
}

const cacheFile = (cacheDir: string) => path.join(cacheDir, 'cpu-peak.json');

/** The peak measured earlier on this machine for `threads`, if any (nothing is run). */
export function cachedCpuPeak(cacheDir: string, threads: number): number | undefined {
  const hit = readCache(cacheFile(cacheDir))[peakKey(threads)];
  return hit && Number.isFinite(hit.flops) && hit.flops > 0 ? hit.flops : undefined;
}

/**
 * Drops the cached peak for `threads`: a run sustained more than it (MFU above 1), so it was
 * measured while the machine was busy; the next start measures again.
 */
export async function forgetCpuPeak(cacheDir: string, threads: number): Promise<void> {
  const file = cacheFile(cacheDir);
  const cache = readCache(file);
  if (!(peakKey(threads) in cache)) return;
  delete cache[peakKey(threads)];
  await atomicWriteFile(file, JSON.stringify(cache, null, 2) + '\n', { createDir: true });
}

/**
 * A GPU's MFU denominator: its datasheet dense peak for the run's precision (src/plan/devices.ts),
 * found by the card's name in what the CUDA addon reports (`blasCore`: "cuBLASLt on NVIDIA H100 80GB
 * HBM3 (sm_90), …"). Undefined for a card the table does not know.
 */
export function gpuPeak(addonDescription: string, precision: Precision): { flops: number; source: string } | undefined {
  for (const device of Object.values(DEVICES)) {
    if (!new RegExp(`\\b${device.name}\\b`, 'i').test(addonDescription)) continue;
    const flops = device.peakFlops[precision];
    if (flops) return { flops, source: `datasheet: ${device.name} ${precision}` };
  }
  return undefined;
}

/** The cached peak for `threads`, else a fresh measurement, which is then cached. */
export async function cpuPeak(cacheDir: string, threads: number): Promise<CpuPeak> {
  const cached = cachedCpuPeak(cacheDir, threads);
  if (cached !== undefined) return { flops: cached, threads, source: 'cached' };
  const flops = await measureCpuPeak(threads);
  const file = cacheFile(cacheDir);
  const cache = readCache(file);
  cache[peakKey(threads)] = { flops, measured_at: new Date().toISOString() };
  await atomicWriteFile(file, JSON.stringify(cache, null, 2) + '\n', { createDir: true });
  return { flops, threads, source: 'measured' };
}
