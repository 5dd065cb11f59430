// devices.ts — the hardware constants of the planner's cost model: per device its memory, dense
// peak FLOP/s per precision, memory bandwidth, and the links a collective runs over (NVLink/NVSwitch
// inside a node, the node's network to other nodes). Figures are the vendors' public datasheets
// (docs/planning.md cites each); a CPU has none of its own and is described by flags.

export type Precision = 'fp32' | 'bf16' | 'fp16';

export interface Device {
  name: string;
  /** What the figures describe (card and system), for the plan's header. */
  description: string;
  memoryBytes: number;
  /** Dense peak FLOP/s by the precision the matrix multiplies run in (no sparsity); absent: not supported. */
  peakFlops: Partial<Record<Precision, number>>;
  /** Memory bandwidth, bytes/s: the optimizer's update is bound by it. */
  memoryBandwidth: number;
  devicesPerNode: number;
  /** One device's link to the others in its node, bytes/s in each direction. */
  intraNodeBandwidth: number;
  /** The node's network to other nodes, bytes/s in each direction (all its adapters together). */
  interNodeBandwidth: number;
  /** Per message of a ring collective, seconds: within a node and across nodes. */
  intraNodeLatency: number;
  interNodeLatency: number;
  /** Memory a worker holds before any model buffer (see MemoryParts.runtime). */
  runtimeBytes: number;
}

/**
 * GPU: the CUDA context, cuBLAS workspace and NCCL buffers, an allowance (not measured here; the
 * engine does not run on a GPU yet).
 */
export const GPU_RUNTIME_BYTES = 2 ** 30;
/**
 * CPU: a worker's Node.js, the addon and its libraries before the model, measured on the
 * development machine by scripts/plan-vs-rss.mjs (a tiny model's peak RSS less its buffers) …
 */
export const CPU_RUNTIME_BYTES = 80 * 2 ** 20;
/** … plus OpenBLAS's GEMM packing buffer per thread (BUFFER_SIZE, 32 MiB on x86-64), which large GEMMs fill. */
export const OPENBLAS_BUFFER_BYTES = 32 * 2 ** 20;

const GB = 1e9;
const GiB = 2 ** 30;
const T = 1e12;

/** Known accelerators, each as the SXM part in NVIDIA's reference system of its generation. */
export const DEVICES: Record<string, Device> = {
  v100: {
    name: 'v100',
    description: 'V100 SXM3 32GB in a DGX-2 (16 GPUs, NVSwitch; 8 × 100 Gb/s InfiniBand per node)',
    memoryBytes: 32 * GiB,
    peakFlops: { fp16: 125 * T, fp32: 15.7 * T },
    memoryBandwidth: 900 * GB,
    devicesPerNode: 16,
    intraNodeBandwidth: 150 * GB, // 300 GB/s NVLink 2 bidirectional
    interNodeBandwidth: 100 * GB, // 8 × 100 Gb/s EDR
    intraNodeLatency: 10e-6,
    interNodeLatency: 20e-6,
    runtimeBytes: GPU_RUNTIME_BYTES,
  },
  a100: {
    name: 'a100',
    description: 'A100 SXM4 80GB in a DGX A100 (8 GPUs, NVLink 3; 8 × 200 Gb/s InfiniBand per node)',
    memoryBytes: 80 * GiB,
    peakFlops: { bf16: 312 * T, fp16: 312 * T, fp32: 19.5 * T },
    memoryBandwidth: 2039 * GB,
    devicesPerNode: 8,
    intraNodeBandwidth: 300 * GB, // 600 GB/s NVLink 3 bidirectional
    interNodeBandwidth: 200 * GB, // 8 × 200 Gb/s HDR
    intraNodeLatency: 8e-6,
    interNodeLatency: 15e-6,
    runtimeBytes: GPU_RUNTIME_BYTES,
  },
  h100: {
    name: 'h100',
    description: 'H100 SXM5 80GB in a DGX H100 (8 GPUs, NVLink 4; 8 × 400 Gb/s InfiniBand per node)',
    memoryBytes: 80 * GiB,
    peakFlops: { bf16: 989 * T, fp16: 989 * T, fp32: 67 * T },
    memoryBandwidth: 3350 * GB,
    devicesPerNode: 8,
    intraNodeBandwidth: 450 * GB, // 900 GB/s NVLink 4 bidirectional
    interNodeBandwidth: 400 * GB, // 8 × 400 Gb/s NDR
    intraNodeLatency: 6e-6,
    interNodeLatency: 12e-6,
    runtimeBytes: GPU_RUNTIME_BYTES,
  },
  h200: {
    name: 'h200',
    description: 'H200 SXM 141GB in a DGX H200 (8 GPUs, NVLink 4; 8 × 400 Gb/s InfiniBand per node)',
    memoryBytes: 141 * GB,
    peakFlops: { bf16: 989 * T, fp16: 989 * T, fp32: 67 * T },
    memoryBandwidth: 4800 * GB,
    devicesPerNode: 8,
    intraNodeBandwidth: 450 * GB,
    interNodeBandwidth: 400 * GB,
    intraNodeLatency: 6e-6,
    interNodeLatency: 12e-6,
    runtimeBytes: GPU_RUNTIME_BYTES,
  },
};

export interface CpuFlags {
  /** Bytes of memory the whole machine offers its worker processes. */
  memoryBytes: number;
  /** Sustained fp32 FLOP/s of one worker (a measured SGEMM rate, e.g. from `paratrain bench`); 0: unknown. */
  peakFlops: number;
  /** The libzmq ring's bus bandwidth between worker processes, bytes/s. */
  linkBandwidth: number;
  devicesPerNode: number;
  /** Engine threads per worker. */
  threads: number;
}

/**
 * A CPU "device": one worker process. Its defaults: 2.5 GB/s, the ipc ring's large-message bus
 * bandwidth on the development machine (docs/collectives.md), and 10 GB/s memory bandwidth.
 */
export function cpuDevice(flags: CpuFlags): Device {
  return {
    name: 'cpu',
    description: `CPU worker processes, ${flags.devicesPerNode} per node sharing its memory`,
    memoryBytes: flags.memoryBytes,
    peakFlops: flags.peakFlops > 0 ? { fp32: flags.peakFlops } : {},
    memoryBandwidth: 10 * GB,
    devicesPerNode: flags.devicesPerNode,
    intraNodeBandwidth: flags.linkBandwidth,
    interNodeBandwidth: flags.linkBandwidth,
    intraNodeLatency: 100e-6,
    interNodeLatency: 200e-6,
    runtimeBytes: CPU_RUNTIME_BYTES + flags.threads * OPENBLAS_BUFFER_BYTES,
  };
}

export class PlanError extends Error {
  readonly code = 'ERR_PLAN';
}

export function deviceByName(name: string): Device {
  const d = DEVICES[name.toLowerCase()];
  if (!d)
    throw new PlanError(`unknown device '${name}': known are ${Object.keys(DEVICES).join(', ')}, or cpu (with flags)`);
  return d;
}

/** Parses a memory size: 80GB, 141GB (10⁹), 32GiB (2³⁰), 512MB, 1.5TB, or plain bytes. */
export function parseBytes(text: string, what = '--gpu-memory'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|tb|tib)?\s*$/i.exec(text);
  const units: Record<string, number> = {
    b: 1,
    kb: 1e3,
    kib: 2 ** 10,
    mb: 1e6,
    mib: 2 ** 20,
    gb: 1e9,
    gib: 2 ** 30,
    tb: 1e12,
    tib: 2 ** 40,
  };
  const value = m ? Number(m[1]) * units[(m[2] ?? 'b').toLowerCase()] : NaN;
  if (!(value > 0)) throw new PlanError(`${what}: '${text}' is not a memory size; write it like 80GB, 32GiB or 512MB`);
  return value;
}
