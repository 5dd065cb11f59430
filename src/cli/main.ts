// main.ts — the `paratrain` command line: train, bench, export, import, fill-mask, generate
// (launch, checkpoint, preprocess, evaluate / predict / embed, build, plan, dashboard and plot register themselves).
import { Command, Option } from 'commander';

import * as fs from 'node:fs';
import * as os from 'node:os';

import { runBench } from '../bench/bench';
import { benchLayouts, parseLayouts } from '../bench/layouts';
import { loadConfig } from '../config/load';
import { parseListenAddress } from '../dashboard/listen-address';
import { startDashboard, type Dashboard } from '../dashboard/server';
import { startMetricsServer, type MetricsServer } from '../metrics/prometheus';
import { fillMask } from '../infer/fill-mask';
import { generate } from '../infer/generate';
import { loadModel } from '../infer/load';
import { exportCheckpointToHf, importHfToCheckpoint } from '../interop/convert';
import { registerLaunchCommand } from '../launch/command';
import { REQUEST_SAVE, REQUEST_STOP } from '../engine/native';
import { START_FRESH_HELP, startFreshProblem } from '../train/checkpointing';
import { train, TrainingError, TrainRequests } from '../train/trainer';
import { registerBuildCommand } from './build-command';
import { registerCheckpointCommand } from './checkpoint-command';
import { registerDashboardCommand } from './dashboard-command';
import { registerPlanCommand } from './plan-command';
import { registerPlotCommand } from './plot-command';
import { registerPreprocessCommand } from './preprocess-command';
import { registerTaskCommands } from './task-commands';

interface TrainCommandOptions {
  config: string;
  set: string[];
  resume?: string;
  startFresh?: boolean;
  dashboard?: string;
  metricsPort?: string;
}

/** The embedded default: a short BERT pretraining on the bundled corpus. */
export const DEFAULT_CONFIG = 'bert-mini';

const collect = (value: string, previous: string[]) => [...previous, value];

function printJson(value: unknown) {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function buildCli(): Command {
  const program = new Command('paratrain')
    .description('Train BERT- and GPT-style language models (TypeScript coordinator, native C++ engine)')
    .showHelpAfterError();

  program
    .command('train')
    .description('train a model in this process')
    .option('-c, --config <file|preset>', 'YAML config or preset name (configs/)', DEFAULT_CONFIG)
    .option('-s, --set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('--resume <path|auto>', "resume from a checkpoint directory, a checkpoints root, or 'auto'")
    .option('--start-fresh', START_FRESH_HELP)
    .option(
      '--dashboard <[host:]port>',
      'serve the live dashboard of this run while it trains (loopback unless a host is named; docs/dashboard.md)',
    )
    .option(
      '--metrics-port <[host:]port>',
      "serve this run's gauges and counters for Prometheus at /metrics (loopback unless a host is named)",
    )
    .action(async (o: TrainCommandOptions) => {
      const startFresh = startFreshProblem(o.resume, o.startFresh);
      if (startFresh) throw new TrainingError('ERR_TRAIN_OPTION', startFresh);
      const listen = o.dashboard === undefined ? undefined : parseListenAddress('--dashboard', o.dashboard);
      const scrape = o.metricsPort === undefined ? undefined : parseListenAddress('--metrics-port', o.metricsPort);
      const config = loadConfig({ config: o.config, set: o.set });
      // The same page as `paratrain dashboard`, in this process: it follows the log the run writes.
      let dashboard: Dashboard | undefined;
      if (listen) {
        fs.mkdirSync(config.run.dir, { recursive: true });
        dashboard = await startDashboard({ runDir: config.run.dir, ...listen, wait: true, portFlag: '--dashboard' });
        process.stderr.write(`paratrain: dashboard of this run at ${dashboard.url}\n`);
      }
      let metrics: MetricsServer | undefined;
      if (scrape) {
        metrics = await startMetricsServer({ runDir: config.run.dir, ...scrape, portFlag: '--metrics-port' });
        process.stderr.write(`paratrain: Prometheus metrics of this run at ${metrics.url}\n`);
      }
      // SIGTERM / SIGUSR1 (Slurm's warning before the time limit): finish the step, save, exit 0.
      // SIGUSR2: save after the current step and go on. A second SIGTERM stops at once.
      const requests = new TrainRequests();
      const onSignal = (signal: NodeJS.Signals) => {
        if (signal === 'SIGUSR2') return requests.raise(REQUEST_SAVE, `${signal}`);
        if (requests.pending & REQUEST_STOP && signal === 'SIGTERM') process.exit(143);
        process.stderr.write(`paratrain: received ${signal}: saving after this step, then stopping\n`);
        requests.raise(REQUEST_STOP, signal);
      };
      const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGUSR1', 'SIGUSR2'];
      for (const sig of signals) process.on(sig, onSignal);
      try {
        const result = await train(config, { resume: o.resume, startFresh: o.startFresh, requests });
        const first = result.steps[0],
          last = result.steps[result.steps.length - 1];
        if (first && last)
          process.stderr.write(
            `paratrain: trained steps ${first.step}..${last.step}: loss ${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}; ` +
              `checkpoint ${result.checkpoints[result.checkpoints.length - 1] ?? '(none)'}` +
              (result.stopped ? `; stopped early (${result.stopped.reason}): continue with --resume auto` : '') +
              '\n',
          );
      } finally {
        for (const sig of signals) process.off(sig, onSignal);
        await dashboard?.close();
        await metrics?.close();
      }
    });

  program
    .command('bench')
    .description('time full training steps and print tokens/s (in this process, or per parallel layout)')
    .option('-c, --config <file|preset>', 'YAML config or preset name', DEFAULT_CONFIG)
    .option('-s, --set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('--steps <n>', 'timed steps', (v) => parseInt(v, 10), 10)
    .option('--warmup <n>', 'untimed steps first', (v) => parseInt(v, 10), 2)
    .option(
      '--layouts <list>',
      'launch the job once per layout and compare, e.g. 1,dp2,tp2,tp2dp2 (TP × DP worker processes)',
    )
    .option('--master-port <port>', 'first coordinator port for --layouts runs', (v) => parseInt(v, 10), 29600)
    .option('--json', 'print JSON')
    .action(
      async (o: {
        config: string;
        set: string[];
        steps: number;
        warmup: number;
        layouts?: string;
        masterPort: number;
        json?: boolean;
      }) => {
        const config = loadConfig({ config: o.config, set: o.set });
        if (o.layouts) {
          const rows = benchLayouts(config, o.config, o.set, parseLayouts(o.layouts), {
            steps: o.steps,
            warmup: o.warmup,
            masterPort: o.masterPort,
          });
          if (o.json) process.stdout.write(JSON.stringify(rows) + '\n');
          else {
            process.stdout.write(
              `${o.config}: median of ${o.steps} steps after ${o.warmup} warm-up, ${os.availableParallelism()} cores\n` +
                '| layout | processes | threads each | ms/step | tokens/s | vs first |\n|---|---|---|---|---|---|\n',
            );
            for (const r of rows)
              process.stdout.write(
                `| ${r.name} | ${r.processes} | ${r.threads_per_process} | ${r.step_ms} | ${r.tokens_per_s} | ${r.ratio}× |\n`,
              );
          }
          return;
        }
        const r = await runBench(config, { steps: o.steps, warmup: o.warmup, name: o.config });
        if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
        else
          process.stdout.write(
            `${r.config}: ${r.tokens_per_s} tokens/s, ${r.step_ms} ms/step (median of ${r.steps}), ` +
              `${r.gflops} GFLOP/s, ${(r.params / 1e6).toFixed(2)}M params, peak RSS ${r.peak_rss_mb} MB\n`,
          );
      },
    );

  program
    .command('export')
    .description('write a checkpoint as a Hugging Face model directory (ELECTRA: the generator in <out>/generator)')
    .requiredOption('--checkpoint <path>', 'checkpoint step directory or checkpoints root')
    .addOption(new Option('--format <format>', 'output format').choices(['hf']).default('hf'))
    .requiredOption('--out <dir>', 'output directory')
    .action(async (o: { checkpoint: string; out: string }) =>
      printJson(await exportCheckpointToHf(o.checkpoint, o.out)),
    );

  program
    .command('import')
    .description('read a Hugging Face model directory (BERT, GPT-2, RoBERTa, ALBERT, ELECTRA) into a checkpoint')
    .requiredOption('--from <dir>', 'directory with config.json and model.safetensors')
    .option('--generator <dir>', 'ELECTRA: the generator (ElectraForMaskedLM); default <from>/generator')
    .requiredOption('--out <path>', 'checkpoints root to write (step-0000000)')
    .action(async (o: { from: string; out: string; generator?: string }) =>
      printJson(await importHfToCheckpoint(o.from, o.out, { generator: o.generator })),
    );

  program
    .command('fill-mask')
    .description('predict the masked tokens of a text with a masked-LM checkpoint (BERT, RoBERTa, ALBERT, ELECTRA)')
    .requiredOption('--checkpoint <path>', 'checkpoint step directory or checkpoints root')
    .option('--top-k <k>', 'candidates per mask', (v) => parseInt(v, 10), 5)
    .option('--tokenizer <file>', "tokenizer.json to use instead of the checkpoint's")
    .option('--json', 'print JSON (the default; kept for symmetry with generate)')
    .argument('<text>', "text with one or more mask tokens ([MASK], or RoBERTa's <mask>)")
    .action(async (text: string, o: { checkpoint: string; topK: number; tokenizer?: string }) => {
      const model = await loadModel(o.checkpoint, o.tokenizer);
      printJson(await fillMask(model, text, o.topK));
    });

  program
    .command('generate')
    .description('continue a prompt with a GPT checkpoint')
    .requiredOption('--checkpoint <path>', 'checkpoint step directory or checkpoints root')
    .requiredOption('--prompt <text>', 'the text to continue')
    .option('--max-new-tokens <n>', 'tokens to generate', (v) => parseInt(v, 10), 20)
    .option('--greedy', 'always take the most likely token')
    .option('--temperature <t>', 'sampling temperature', parseFloat, 1.0)
    .option('--top-k <k>', 'sample among the k most likely (0 = all)', (v) => parseInt(v, 10), 40)
    .option('--seed <n>', 'sampling seed', (v) => parseInt(v, 10), 0)
    .option('--tokenizer <file>', "tokenizer.json to use instead of the checkpoint's")
    .option('--json', 'print JSON (the default)')
    .action(
      async (o: {
        checkpoint: string;
        prompt: string;
        maxNewTokens: number;
        greedy?: boolean;
        temperature: number;
        topK: number;
        seed: number;
        tokenizer?: string;
      }) => {
        const model = await loadModel(o.checkpoint, o.tokenizer);
        printJson(
          await generate(model, {
            prompt: o.prompt,
            maxNewTokens: o.maxNewTokens,
            greedy: !!o.greedy,
            temperature: o.temperature,
            topK: o.topK,
            seed: o.seed,
          }),
        );
      },
    );
  registerLaunchCommand(program);
  registerCheckpointCommand(program);
  registerPreprocessCommand(program);
  registerTaskCommands(program);
  registerBuildCommand(program);
  registerPlanCommand(program);
  registerDashboardCommand(program);
  registerPlotCommand(program);
  return program;
}

/** Runs the CLI; any error is printed as one clear message with its code, and the exit is non-zero. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildCli().exitOverride().parseAsync(argv);
    return 0;
  } catch (err) {
    const e = err as Error & { code?: string; exitCode?: number };
    if (e.code?.startsWith('commander.')) {
      // commander already printed usage or help
      return e.exitCode ?? 2;
    }
    process.stderr.write(`paratrain: error${e.code ? ` [${e.code}]` : ''}: ${e.message}\n`);
    if (process.env.PARATRAIN_DEBUG) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
