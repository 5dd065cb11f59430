// What a launcher resolves before it starts anything: Slurm host lists, flags > Slurm > env >
// defaults, the data-plane address, the checks of the parallel layout, and each worker's env.
import { describe, expect, it } from 'vitest';

import { validateConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { countGpus } from '../../src/launch/gpus';
import { checkLaunchPlan, resolveHostAddr, resolveLaunchPlan } from '../../src/launch/options';
import { expandHostlist, firstHost } from '../../src/launch/slurm-hostlist';
import { threadsPerWorker, workerEnv } from '../../src/launch/worker-env';

const noInterfaces = {};
// A multi-node plan needs the nodes' shared secret; the layout tests give every plan one.
const plan = (flags: Parameters<typeof resolveLaunchPlan>[0], env: NodeJS.ProcessEnv = {}) =>
  resolveLaunchPlan({ authKeyFile: 'job.key', ...flags }, env, noInterfaces);
const bare = (flags: Parameters<typeof resolveLaunchPlan>[0], env: NodeJS.ProcessEnv = {}) =>
  resolveLaunchPlan(flags, env, noInterfaces);

describe('Slurm host lists', () => {
  it('expands ranges, keeps zero padding, and lists plain hosts', () => {
    expect(expandHostlist('gpu[01-04,07],login2')).toEqual(['gpu01', 'gpu02', 'gpu03', 'gpu04', 'gpu07', 'login2']);
    expect(firstHost('gpu[01-04,07],login2')).toBe('gpu01');
    expect(expandHostlist('node7')).toEqual(['node7']);
    expect(expandHostlist('a[8-10]')).toEqual(['a8', 'a9', 'a10']);
    expect(expandHostlist('rack[1-2]-gpu[01-02].cluster')).toEqual([
      'rack1-gpu01.cluster',
      'rack1-gpu02.cluster',
      'rack2-gpu01.cluster',
      'rack2-gpu02.cluster',
    ]);
    expect(firstHost('login[3],gpu[1-2]')).toBe('login3');
  });

  it('refuses what is not a host list, naming the variable', () => {
    for (const bad of ['gpu[01-04', 'gpu[a-b]', 'gpu[4-1]', '', 'a]b['])
      expect(() => expandHostlist(bad)).toThrow(expect.objectContaining({ code: 'ERR_LAUNCH_ENV' }));
    expect(() => expandHostlist('gpu[01-04')).toThrow(/SLURM_JOB_NODELIST 'gpu\[01-04'/);
  });
});

describe('authentication', () => {
  it('is on by default: a single-node job makes its key, a multi-node job needs one or --no-auth', () => {
    expect(bare({})).toMatchObject({ auth: 'job', authKeyFile: undefined });
    expect(bare({ nprocPerNode: 4 }).auth).toBe('job');
    expect(bare({ nnodes: 2, authKeyFile: 'k' })).toMatchObject({
      auth: 'file',
      authKeyFile: expect.stringMatching(/\/k$/),
    });
    expect(bare({ nnodes: 2 }, { PARATRAIN_AUTH_KEY_FILE: '/etc/pt/key' })).toMatchObject({
      auth: 'file',
      authKeyFile: '/etc/pt/key',
    });
    expect(bare({ nnodes: 2, auth: false })).toMatchObject({ auth: 'off', authKeyFile: undefined });
    expect(bare({ auth: false }).auth).toBe('off');
    expect(() => bare({ nnodes: 2 })).toThrow(expect.objectContaining({ code: 'ERR_AUTH_KEY' }));
    expect(() => bare({ nnodes: 2 })).toThrow(/needs one secret shared by every node.*--auth-key-file.*--no-auth/s);
    expect(() => bare({}, { SLURM_JOB_ID: '1', SLURM_NNODES: '3', SLURM_NODEID: '0' })).toThrow(/a job of 3 nodes/);
    expect(() => bare({ authKeyFile: 'k', auth: false })).toThrow(/--no-auth and an auth key file \(k\) contradict/);
  });
});

describe('launch plan', () => {
  it('has torchrun defaults', () => {
    expect(plan({})).toMatchObject({
      nnodes: 1,
      nodeRank: 0,
      nprocPerNode: 1,
      worldSize: 1,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      hostAddr: '127.0.0.1',
      heartbeatIntervalMs: 2000,
      heartbeatTimeoutMs: 20000,
      firstStepTimeoutMs: 300000,
      rendezvousTimeoutMs: 300000,
      maxRestarts: 0,
      stopTimeoutMs: 120000,
      layoutSource: 'defaults',
    });
    expect(plan({}).statusFile).toBeUndefined();
  });

  it('restarts and the stop timeout: flags, PARATRAIN_MAX_RESTARTS, and bad values named', () => {
    expect(plan({ maxRestarts: '3', stopTimeout: '30', statusFile: 'st.json' })).toMatchObject({
      maxRestarts: 3,
      stopTimeoutMs: 30000,
      statusFile: expect.stringMatching(/^\/.*\/st\.json$/),
    });
    expect(plan({}, { PARATRAIN_MAX_RESTARTS: '2' }).maxRestarts).toBe(2);
    expect(plan({ maxRestarts: 0 }, { PARATRAIN_MAX_RESTARTS: '2' }).maxRestarts).toBe(0);
    expect(plan({}, { PARATRAIN_MAX_RESTARTS: '' }).maxRestarts).toBe(0);
    const cases: Array<[Parameters<typeof plan>[0], NodeJS.ProcessEnv, RegExp]> = [
      [{ maxRestarts: '-1' }, {}, /--max-restarts expects an integer >= 0, got '-1'/],
      [{ maxRestarts: 'many' }, {}, /--max-restarts expects an integer >= 0, got 'many'/],
      [{ maxRestarts: '1.5' }, {}, /--max-restarts expects an integer >= 0/],
      [{}, { PARATRAIN_MAX_RESTARTS: 'x' }, /PARATRAIN_MAX_RESTARTS expects an integer >= 0, got 'x'/],
      [{ stopTimeout: '0' }, {}, /--stop-timeout expects a positive number of seconds, got '0'/],
      [{ stopTimeout: 'soon' }, {}, /--stop-timeout expects a positive number of seconds/],
    ];
    for (const [flags, env, message] of cases)
      expect(() => plan(flags, env)).toThrow(
        expect.objectContaining({ code: 'ERR_LAUNCH_OPTION', message: expect.stringMatching(message) }),
      );
  });

  it('reads MASTER_ADDR/MASTER_PORT, and flags win over them', () => {
    const env = { MASTER_ADDR: '10.1.2.3', MASTER_PORT: '31000' };
    expect(plan({ hostAddr: '10.1.2.4' }, env)).toMatchObject({ masterAddr: '10.1.2.3', masterPort: 31000 });
    expect(plan({ masterAddr: 'head', masterPort: '31001', hostAddr: 'x' }, env)).toMatchObject({
      masterAddr: 'head',
      masterPort: 31001,
    });
  });

  it('under Slurm with one task per node: nodes, node rank, first host, GPUs per node', () => {
    const env = {
      SLURM_JOB_ID: '77',
      SLURM_NNODES: '4',
      SLURM_NTASKS: '4',
      SLURM_NODEID: '2',
      SLURM_PROCID: '2',
      SLURM_JOB_NODELIST: 'gpu[01-04]',
      SLURM_GPUS_ON_NODE: '8',
      SLURM_NTASKS_PER_NODE: '1',
      MASTER_ADDR: 'ignored-under-slurm',
    };
    expect(plan({ hostAddr: '10.0.0.3' }, env)).toMatchObject({
      nnodes: 4,
      nodeRank: 2,
      nprocPerNode: 8,
      worldSize: 32,
      masterAddr: 'gpu01',
      layoutSource: 'slurm',
    });
    // Without GPUs, tasks per node ('2(x4)' is Slurm's "2 on each of 4 nodes").
    const cpu = { ...env, SLURM_GPUS_ON_NODE: undefined, SLURM_NTASKS_PER_NODE: '2(x4)' };
    expect(plan({ hostAddr: 'x' }, cpu).nprocPerNode).toBe(2);
    // Flags win.
    expect(plan({ nprocPerNode: '3', masterAddr: 'elsewhere', hostAddr: 'x' }, env)).toMatchObject({
      nprocPerNode: 3,
      masterAddr: 'elsewhere',
      nnodes: 4,
    });
  });

  it('--nproc-per-node gpu: one worker per GPU the workers will see, or a clear refusal', () => {
    const smi = (n: number) => () =>
      Array.from({ length: n }, (_, i) => `GPU ${i}: NVIDIA H100 80GB HBM3 (UUID: GPU-${i})`).join('\n');
    const withGpus = (env: NodeJS.ProcessEnv, listing: () => string | undefined) =>
      resolveLaunchPlan({ nprocPerNode: 'gpu', hostAddr: 'x' }, env, undefined, () => countGpus(env, listing));
    expect(withGpus({}, smi(8)).nprocPerNode).toBe(8);
    expect(withGpus({}, smi(8)).worldSize).toBe(8);
    // CUDA_VISIBLE_DEVICES is what the workers see; CUDA stops at the first invalid entry.
    expect(withGpus({ CUDA_VISIBLE_DEVICES: '2,3' }, smi(8)).nprocPerNode).toBe(2);
    expect(withGpus({ CUDA_VISIBLE_DEVICES: '0,1,-1,3' }, smi(8)).nprocPerNode).toBe(2);
    for (const [env, listing, source] of [
      [{}, () => undefined, 'nvidia-smi (not found or failed)'],
      [{}, smi(0), 'nvidia-smi -L'],
      [{ CUDA_VISIBLE_DEVICES: '' }, smi(8), "CUDA_VISIBLE_DEVICES=''"],
    ] as const) {
      expect(() => withGpus(env, listing)).toThrow(
        expect.objectContaining({
          code: 'ERR_LAUNCH_OPTION',
          message: expect.stringContaining(
            `--nproc-per-node gpu: this node has no GPU its workers can use (${source})`,
          ),
        }),
      );
    }
    expect(() => plan({ nprocPerNode: 'gpus', hostAddr: 'x' })).toThrow(/--nproc-per-node/);
  });

  it('under Slurm with one task per rank: each task is a one-process node', () => {
    const env = {
      SLURM_JOB_ID: '78',
      SLURM_NNODES: '2',
      SLURM_NTASKS: '8',
      SLURM_NODEID: '1',
      SLURM_PROCID: '5',
      SLURM_NODELIST: 'cn[7-8]',
    };
    expect(plan({ hostAddr: 'x' }, env)).toMatchObject({
      nnodes: 8,
      nodeRank: 5,
      nprocPerNode: 1,
      worldSize: 8,
      masterAddr: 'cn7',
      layoutSource: 'slurm-per-task',
    });
  });

  it('refuses bad values with the flag and what it expects', () => {
    const cases: Array<[Parameters<typeof plan>[0], RegExp]> = [
      [{ nnodes: '0' }, /--nnodes expects an integer >= 1, got '0'/],
      [{ nnodes: 'two' }, /--nnodes expects an integer >= 1/],
      [{ nnodes: 2, nodeRank: 2 }, /--node-rank 2 is outside --nnodes 2; node ranks are 0..1/],
      [{ masterPort: '70000' }, /--master-port expects an integer 1..65535/],
      [{ heartbeatTimeout: '-1' }, /--heartbeat-timeout expects a positive number of seconds/],
      [{ heartbeatInterval: 5, heartbeatTimeout: 2 }, /must be longer than --heartbeat-interval/],
    ];
    for (const [flags, message] of cases)
      expect(() => plan(flags)).toThrow(
        expect.objectContaining({ code: 'ERR_LAUNCH_OPTION', message: expect.stringMatching(message) }),
      );
    expect(() => plan({}, { SLURM_JOB_ID: '1', SLURM_NNODES: 'many' })).toThrow(/SLURM_NNODES='many' is not a number/);
  });

  it('takes fractional seconds', () => {
    expect(plan({ heartbeatInterval: '0.2', heartbeatTimeout: '1.5' })).toMatchObject({
      heartbeatIntervalMs: 200,
      heartbeatTimeoutMs: 1500,
    });
  });

  it('binds the data plane to loopback, --host-addr, or the first external IPv4', () => {
    const interfaces = {
      lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
      eth0: [
        { address: 'fe80::1', family: 'IPv6', internal: false },
        { address: '10.9.8.7', family: 'IPv4', internal: false },
      ],
    } as never;
    expect(resolveHostAddr(undefined, 'localhost', interfaces)).toBe('127.0.0.1');
    expect(resolveHostAddr(undefined, 'head-node', interfaces)).toBe('10.9.8.7');
    expect(resolveHostAddr('192.168.0.5', 'head-node', interfaces)).toBe('192.168.0.5');
    expect(() => resolveHostAddr(undefined, 'head-node', {})).toThrow(/--host-addr/);
  });
});

describe('layout checks before anything starts', () => {
  const config = (tensor: number) =>
    ({
      ...validateConfig({
        model: { arch: 'bert', layers: 1, hidden: 32, heads: 2, ffn: 64, vocab_size: 100, seq_len: 16 },
        train: { steps: 1, micro_batch: 1, lr: 1e-3 },
      }),
      parallel: { tensor },
    }) as Config;
  const withModel = (c: Config, model: Partial<Config['model']>) => ({ ...c, model: { ...c.model, ...model } });

  it('accepts a layout that fits', () => {
    expect(() => checkLaunchPlan(plan({ nnodes: 2, nodeRank: 1, nprocPerNode: 2 }), config(2))).not.toThrow();
  });

  it('refuses TP across nodes and TP not dividing the world', () => {
    expect(() => checkLaunchPlan(plan({ nnodes: 2, nprocPerNode: 1 }), config(2))).toThrow(
      expect.objectContaining({
        code: 'ERR_PARALLEL_LAYOUT',
        message: expect.stringMatching(/does not divide --nproc-per-node 1/),
      }),
    );
    expect(() => checkLaunchPlan(plan({ nprocPerNode: 3 }), config(2))).toThrow(/does not divide the world size 3/);
  });

  it('refuses TP not dividing heads, hidden or ffn, naming the keys and values', () => {
    const c = withModel(config(4), { heads: 6, hidden: 30, ffn: 64 });
    let message = '';
    try {
      checkLaunchPlan(plan({ nprocPerNode: 4 }), c);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/parallel\.tensor = 4 does not divide model\.heads = 6/);
    expect(message).toMatch(/parallel\.tensor = 4 does not divide model\.hidden = 30/);
    expect(message).not.toMatch(/model\.ffn/);
  });
});

describe('worker environment', () => {
  it("sets torchrun's names, the job's, and an equal share of the cores", () => {
    const p = plan({ nnodes: 2, nodeRank: 1, nprocPerNode: 4, masterAddr: 'head', hostAddr: '10.0.0.2' });
    const env = workerEnv({
      plan: p,
      localRank: 3,
      welcome: {
        jobId: 'feedbeef',
        round: 0,
        worldSize: 8,
        heartbeatIntervalMs: 1000,
        heartbeatTimeoutMs: 9000,
        firstStepTimeoutMs: 60000,
        rendezvousTimeoutMs: 120000,
      },
      configJson: '{"x":1}',
      ipcDir: '/tmp/pt-feedbeef-n1',
      agentPid: 123,
      cores: 10,
      base: { PATH: '/bin', OMP_NUM_THREADS: '64' },
    });
    expect(env).toMatchObject({
      PATH: '/bin',
      RANK: '7',
      LOCAL_RANK: '3',
      WORLD_SIZE: '8',
      LOCAL_WORLD_SIZE: '4',
      NODE_RANK: '1',
      MASTER_ADDR: 'head',
      MASTER_PORT: '29500',
      PARATRAIN_JOB_ID: 'feedbeef',
      PARATRAIN_ROUND: '0',
      PARATRAIN_RESTART_COUNT: '0',
      TORCHELASTIC_RESTART_COUNT: '0',
      PARATRAIN_CONFIG: '{"x":1}',
      PARATRAIN_HOST_ADDR: '10.0.0.2',
      PARATRAIN_IPC_DIR: '/tmp/pt-feedbeef-n1',
      PARATRAIN_HEARTBEAT_INTERVAL_MS: '1000',
      PARATRAIN_HEARTBEAT_TIMEOUT_MS: '9000',
      PARATRAIN_FIRST_STEP_TIMEOUT_MS: '60000',
      PARATRAIN_NUM_THREADS: '2',
      OMP_NUM_THREADS: '2',
    });
    expect(threadsPerWorker(2, 4)).toBe(1);
    const pinned = workerEnv({
      plan: p,
      localRank: 0,
      welcome: {
        jobId: 'j',
        round: 0,
        worldSize: 8,
        heartbeatIntervalMs: 1,
        heartbeatTimeoutMs: 2,
        firstStepTimeoutMs: 3,
        rendezvousTimeoutMs: 4,
      },
      configJson: '{}',
      ipcDir: '/tmp/x',
      agentPid: 1,
      cores: 10,
      base: { PARATRAIN_NUM_THREADS: '5' },
    });
    expect([pinned.PARATRAIN_NUM_THREADS, pinned.OMP_NUM_THREADS]).toEqual(['5', '5']);
  });

  it('a restarted round: its restart count under both names; what to resume comes in the Assignment', () => {
    const env = workerEnv({
      plan: plan({ resume: 'auto' }),
      localRank: 0,
      welcome: {
        jobId: 'j',
        round: 2,
        worldSize: 1,
        heartbeatIntervalMs: 1,
        heartbeatTimeoutMs: 2,
        firstStepTimeoutMs: 3,
        rendezvousTimeoutMs: 4,
      },
      configJson: '{}',
      ipcDir: '/tmp/x',
      agentPid: 1,
      cores: 1,
      base: { PARATRAIN_RESUME: '/somewhere/else' },
    });
    expect(env).toMatchObject({ PARATRAIN_ROUND: '2', PARATRAIN_RESTART_COUNT: '2', TORCHELASTIC_RESTART_COUNT: '2' });
    expect(env).not.toHaveProperty('PARATRAIN_RESUME');
  });
});
