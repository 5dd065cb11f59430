// main.ts — one worker process of a distributed job, as `paratrain launch` starts it (one per rank).
// Reads its environment (torchrun's variables + PARATRAIN_*), binds its data plane, registers with
// the coordinator, joins its tensor- and data-parallel rings, and runs the training loop on its
// shard. Any error is reported to the coordinator, which stops the whole job.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { validateConfig } from '../config/load';
import type { Config } from '../config/schema';
import { deriveDataPlaneKeys, loadJobSecret } from '../control/auth';
import { placeRank } from '../coordinator/groups';
import { createDataPlane, createEngine, ncclAddon } from '../engine/engine';
import { loadedAddonFile, REQUEST_SAVE, REQUEST_STOP, type RingEndpoints } from '../engine/native';
import { train, TrainRequests } from '../train/trainer';
import { ControlClient, type Assignment, type PeerInfo } from './control';
import { PACKAGE_ROOT } from '../package-root';

function requiredEnv(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '')
    throw Object.assign(new Error(`${name} is not set: workers are started by \`paratrain launch\``), {
      code: 'ERR_WORKER_ENV',
    });
  return v;
}

/** Same resolved config on every rank ⇔ same hash (the coordinator compares them). */
export function configHash(c: Config): string {
  return crypto.createHash('sha256').update(JSON.stringify(c)).digest('hex');
}

/** Same native build on every rank ⇔ same hash: the addon's bytes and the package version. */
export function buildHash(): string {
  const h = crypto.createHash('sha256');
  const file = loadedAddonFile();
  if (file) h.update(fs.readFileSync(file));
  h.update(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json')));
  return h.digest('hex');
}

/** The endpoint of the next rank in a ring: ipc:// on the same host, tcp:// across hosts. */
export function nextEndpoint(peers: PeerInfo[], index: number, ring: 'tp' | 'dp'): string {
  const me = peers[index];
  const next = peers[(index + 1) % peers.length];
  const e: RingEndpoints = next.endpoints[ring];
  return next.host === me.host && e.ipc ? e.ipc : e.tcp;
}

/**
 * parallel.comm nccl: no rings; the first member of each group makes the group's NCCL unique id and
 * registers it with its endpoints, and every member reads it from peers[0] of its assignment.
 */
function ncclEndpoints(config: Config, localRank: number): { tp: RingEndpoints; dp: RingEndpoints } {
  const rank = Number(requiredEnv('RANK'));
  const place = placeRank(rank, {
    worldSize: Number(requiredEnv('WORLD_SIZE')),
    nprocPerNode: Number(process.env.LOCAL_WORLD_SIZE ?? localRank + 1),
    tpSize: config.parallel.tensor,
  });
  const { ncclUniqueId } = ncclAddon(config);
  const group = (leads: boolean): RingEndpoints => ({ ipc: '', tcp: '', ...(leads ? { ncclId: ncclUniqueId() } : {}) });
  return { tp: group(place.tpRank === 0), dp: group(place.dpRank === 0) };
}

function groupId(peers: PeerInfo[], ring: 'tp' | 'dp'): Uint8Array {
  const id = peers[0]?.endpoints[ring].ncclId;
  if (!id || id.length === 0)
    throw new Error(
      `the first member of this worker's ${ring} group sent no NCCL id (a mix of parallel.comm settings?)`,
    );
  return id;
}

function dataPlaneKeys() {
  return deriveDataPlaneKeys(loadJobSecret(requiredEnv('PARATRAIN_AUTH_KEY_FILE')));
}

async function runWorker(control: ControlClient): Promise<void> {
  const config = validateConfig(JSON.parse(requiredEnv('PARATRAIN_CONFIG')), 'PARATRAIN_CONFIG');
  const localRank = Number(requiredEnv('LOCAL_RANK'));
  const nodeRank = Number(process.env.NODE_RANK ?? 0);
  const nccl = config.parallel.comm === 'nccl';
  const hostAddr = process.env.PARATRAIN_HOST_ADDR ?? '127.0.0.1';
  const plane = nccl
    ? undefined
    : createDataPlane(config, {
        ipcDir: process.env.PARATRAIN_IPC_DIR ?? '',
        // '' (a single-node job): ipc only, no tcp listener.
        hostAddr,
        localRank,
        // Over TCP every ring connection is CURVE-authenticated with the job's keys. A single-node
        // job's rings are ipc sockets in the job's 0700 directory: only this user reaches them, and
        // this user can read the key anyway, so encrypting them would cost bandwidth and guard nothing.
        curve:
          hostAddr && process.env.PARATRAIN_AUTH_KEY_FILE && process.env.PARATRAIN_DATA_PLANE_AUTH !== '0'
            ? dataPlaneKeys()
            : undefined,
      });
  const a: Assignment = await control.register({
    host: os.hostname(),
    nodeRank,
    localRank,
    pid: process.pid,
    device: config.device,
    endpoints: plane ? plane.endpoints() : ncclEndpoints(config, localRank),
    configHash: configHash(config),
    buildHash: buildHash(),
  });
  let groups;
  if (plane) {
    await plane.connect({
      tp: { rank: a.tpRank, size: a.tpSize, next: nextEndpoint(a.tpPeers, a.tpRank, 'tp') },
      dp: { rank: a.dpRank, size: a.dpSize, next: nextEndpoint(a.dpPeers, a.dpRank, 'dp') },
    });
    groups = plane;
  } else {
    const { NcclPlane } = ncclAddon(config);
    const ncclPlane = new NcclPlane({
      tp: { rank: a.tpRank, size: a.tpSize, id: groupId(a.tpPeers, 'tp') },
      dp: { rank: a.dpRank, size: a.dpSize, id: groupId(a.dpPeers, 'dp') },
      timeoutMs: Math.round(config.parallel.comm_timeout_s * 1000),
    });
    await ncclPlane.connect();
    groups = ncclPlane;
  }
  const engine = createEngine(
    config,
    {},
    { tpRank: a.tpRank, tpSize: a.tpSize, dpRank: a.dpRank, dpSize: a.dpSize, dataPlane: groups },
  );
  await control.ready();
  control.setPhase('first-step');
  // The launcher's SIGTERM/SIGUSR1 (stop) and SIGUSR2 (save) arrive as the coordinator's requests;
  // the engine agrees on the step with the other ranks (src/train/trainer.ts).
  const requests = new TrainRequests();
  control.onSaveRequest((r) => requests.raise(r.stop ? REQUEST_STOP | REQUEST_SAVE : REQUEST_SAVE, r.reason));
  let lastEval: number | undefined;
  const result = await train(
    config,
    { quiet: false, requests },
    {
      rank: a.rank,
      tpRank: a.tpRank,
      tpSize: a.tpSize,
      dpRank: a.dpRank,
      dpSize: a.dpSize,
      engine,
      resumeDir: a.resumeDir,
      restartCount: a.restartCount,
      commitShard: (report) => control.reportShardSaved(report),
      setPhase: (p) => control.setPhase(p),
      onEval: (_step, loss) => (lastEval = loss),
      onStep: (r, d) => {
        control.setPhase('train');
        // Every figure is job-wide already; the first rank of each tensor-parallel group reports.
        if (a.tpRank === 0)
          control.reportStep({
            step: r.step,
            totalSteps: config.train.steps,
            loss: r.loss,
            losses: Object.entries(r.losses).map(([name, value]) => ({ name, value })),
            metrics: Object.entries(r.metrics).map(([name, value]) => ({ name, value })),
            gradNorm: r.gradNorm,
            lr: r.lr,
            tokensPerS: d.tokensPerS,
            stepMs: d.stepMs,
            skipped: d.skipped,
            consumedSamples: d.consumedSamples,
            ...(lastEval !== undefined ? { evalLoss: lastEval } : {}),
          });
        lastEval = undefined;
      },
    },
  );
  await control.finish(result.stopped ? { stopped: true, step: result.stopped.step } : {});
  await control.close();
}

async function main(): Promise<void> {
  let control: ControlClient | undefined;
  try {
    control = ControlClient.fromEnv();
    await runWorker(control);
    process.exit(0);
  } catch (err) {
    const e = err as Error & { code?: string };
    const code = e.code ?? 'ERR_WORKER';
    process.stderr.write(`paratrain worker (rank ${process.env.RANK ?? '?'}): error [${code}]: ${e.message}\n`);
    if (process.env.PARATRAIN_DEBUG) process.stderr.write(`${e.stack}\n`);
    try {
      await control?.reportFailure(code, e.message);
    } catch {
      // the coordinator may be gone; the exit code tells the agent
    }
    process.exit(1);
  }
}

if (require.main === module) void main();
