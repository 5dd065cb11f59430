// plan-command.ts — `paratrain plan`: memory per device, the TP × DP layouts that fit, and each
// one's communication and predicted step time, from a config alone (nothing runs). The model is
// in src/plan/; docs/planning.md explains it. Bad flags are PlanErrors; main.ts prints them.
import { Option, type Command } from 'commander';
import * as os from 'node:os';

import { loadConfig } from '../config/load';
import { resolveThreads } from '../engine/engine';
import { cachedCpuPeak } from '../engine/peak';
import { cpuDevice, deviceByName, DEVICES, parseBytes, PlanError, type Precision } from '../plan/devices';
import { formatPlan, planRun } from '../plan/plan';

interface PlanFlags {
  config: string;
  set: string[];
  gpus?: string;
  device?: string;
  gpuMemory?: string;
  precision?: Precision;
  microBatch?: string;
  seqLen?: string;
  peakTflops?: string;
  linkGbs?: string;
  computeEfficiency?: string;
  devicesPerNode?: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

function positiveInt(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isInteger(n) || n < 1)
    throw new PlanError(`${flag}: '${text}' is not a positive whole number`);
  return n;
}

function positiveNumber(flag: string, text: string | undefined, fallback: number, max = Infinity): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0 || n > max)
    throw new PlanError(`${flag}: '${text}' is not a number in (0, ${max === Infinity ? '∞' : max}]`);
  return n;
}

export function registerPlanCommand(program: Command) {
  program
    .command('plan')
    .description('predict memory per device, the TP×DP layouts that fit, and step time and MFU (nothing runs)')
    .option('-c, --config <file|preset>', 'YAML config or preset name', 'bert-mini')
    .option('-s, --set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('--gpus <n>', 'devices in the job (CPU: worker processes); default 1')
    .option('--device <name>', `${Object.keys(DEVICES).join(', ')} or cpu; default h100 with --gpus, else cpu`)
    .option('--gpu-memory <size>', "memory per device, e.g. 80GB or 32GiB (default: the device's)")
    .addOption(
      new Option('--precision <p>', 'fp32 (CPU default), bf16 (GPU default), fp16').choices(['fp32', 'bf16', 'fp16']),
    )
    .option('--micro-batch <b>', "sequences per micro-batch (default: the config's train.micro_batch)")
    .option('--seq-len <s>', "tokens per sequence (default: the config's model.seq_len)")
    .option(
      '--peak-tflops <x>',
      'dense peak per device in TFLOP/s (CPU default: the peak training measured and cached)',
    )
    .option('--link-gbs <x>', 'CPU: the ring bandwidth between workers in GB/s (default 2.5)')
    .option('--compute-efficiency <f>', 'fraction of the peak matrix multiplies sustain (default GPU 0.5, CPU 1)')
    .option('--devices-per-node <n>', "devices per node (default: the device's system; CPU: all)")
    .option('--json', 'print JSON')
    .action((o: PlanFlags) => {
      const set = [...o.set];
      if (o.microBatch !== undefined) set.push(`train.micro_batch=${positiveInt('--micro-batch', o.microBatch, 1)}`);
      if (o.seqLen !== undefined) set.push(`model.seq_len=${positiveInt('--seq-len', o.seqLen, 1)}`);
      const config = loadConfig({ config: o.config, set });
      const gpus = positiveInt('--gpus', o.gpus, 1);
      const onGpu = o.device ? o.device.toLowerCase() !== 'cpu' : o.gpus !== undefined || o.gpuMemory !== undefined;
      const perNode =
        o.devicesPerNode !== undefined ? positiveInt('--devices-per-node', o.devicesPerNode, 1) : undefined;
      const threads = Math.max(1, Math.floor(resolveThreads(config.train.threads) / Math.min(gpus, perNode ?? gpus)));
      let device;
      if (onGpu) {
        device = { ...deviceByName(o.device ?? 'h100') };
        if (o.gpuMemory !== undefined) device.memoryBytes = parseBytes(o.gpuMemory);
        if (o.peakTflops !== undefined) {
          const peak = positiveNumber('--peak-tflops', o.peakTflops, 1) * 1e12;
          device.peakFlops = Object.fromEntries(Object.keys(device.peakFlops).map((k) => [k, peak]));
        }
        if (perNode !== undefined) device.devicesPerNode = perNode;
      } else {
        const processes = perNode ?? gpus;
        // The machine's memory is shared by the workers on it.
        const machine = o.gpuMemory !== undefined ? parseBytes(o.gpuMemory) : os.totalmem();
        device = cpuDevice({
          memoryBytes: machine / Math.min(processes, gpus),
          // Without the flag: the peak the training runs measured here (src/engine/peak.ts), if any.
          peakFlops:
            o.peakTflops === undefined
              ? (cachedCpuPeak(config.data.cache_dir, threads) ?? 0)
              : positiveNumber('--peak-tflops', o.peakTflops, 1) * 1e12,
          linkBandwidth: positiveNumber('--link-gbs', o.linkGbs, 2.5) * 1e9,
          devicesPerNode: processes,
          threads,
        });
      }
      const precision: Precision = o.precision ?? (onGpu ? (device.peakFlops.bf16 ? 'bf16' : 'fp16') : 'fp32');
      if (!onGpu && precision !== 'fp32')
        throw new PlanError(`--precision ${precision}: the CPU engine trains in fp32 only`);
      const plan = planRun(config, {
        devices: gpus,
        device,
        precision,
        threads: onGpu ? 1 : threads,
        computeEfficiency: positiveNumber('--compute-efficiency', o.computeEfficiency, onGpu ? 0.5 : 1, 1),
      });
      process.stdout.write(o.json ? JSON.stringify(plan, null, 2) + '\n' : formatPlan(plan));
    });
}
