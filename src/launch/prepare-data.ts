// prepare-data.ts — the agent prepares a run's data once per node, before its workers start, so
// they find the tokenizer and the token cache instead of all building them at once. It runs as a
// child process: tokenizer training blocks its process for seconds, and the agent's own event loop
// must stay free for heartbeats and aborts meanwhile. It also measures the CPU's peak for MFU with the
// workers' thread count (src/engine/peak.ts), so that the workers find it cached too.
import { spawn } from 'node:child_process';

import { validateConfig } from '../config/load';
import { resolveThreads } from '../engine/engine';
import { cpuPeak } from '../engine/peak';
import { openRunData } from '../train/trainer';
import { LineTail } from './worker-process';

export interface DataPreparation {
  /** Resolves when the data is ready; rejects with the child's last lines when it failed. */
  done: Promise<void>;
  /** Stops the preparation (the job was aborted meanwhile). */
  cancel(): void;
}

/** `workerThreads`: each worker's engine threads, for the peak measurement. */
export function prepareRunDataInChild(configJson: string, workerThreads: number): DataPreparation {
  const child = spawn(process.execPath, [__filename], {
    env: { ...process.env, PARATRAIN_CONFIG: configJson, PARATRAIN_NUM_THREADS: String(workerThreads) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail = new LineTail(10);
  for (const s of [child.stdout, child.stderr]) {
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => tail.push(chunk));
  }
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err) => tail.push(`${err.message}\n`));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `data preparation ${signal ? `was killed by ${signal}` : `exited with code ${code}`}: ` +
              tail.last().join(' | '),
          ),
        );
    });
  });
  return { done, cancel: () => child.kill('SIGKILL') };
}

async function prepareFromEnv(): Promise<void> {
  const config = validateConfig(JSON.parse(process.env.PARATRAIN_CONFIG ?? 'null'), 'PARATRAIN_CONFIG');
  await openRunData(config);
  await cpuPeak(config.data.cache_dir, resolveThreads(config.train.threads));
}

if (require.main === module) {
  prepareFromEnv().then(
    () => process.exit(0),
    (err: Error & { code?: string }) => {
      process.stderr.write(`${err.code ? `[${err.code}] ` : ''}${err.message}\n`);
      process.exit(1);
    },
  );
}
