// Input that would exhaust the machine or hang the command is refused up front, as a user meets it:
// a real `paratrain` process, a clear coded message naming the key, a non-zero exit, in seconds,
// and nothing written into an existing run's directory.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..', '..');

function paratrain(args: string[]) {
  const t0 = Date.now();
  // SIGKILL: a command that hangs deaf to SIGTERM (the old /proc case) still ends the test.
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    killSignal: 'SIGKILL',
  });
  return { code: r.status, signal: r.signal, stderr: r.stderr, ms: Date.now() - t0 };
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-limits-'));

describe('sizes beyond the schema’s limits', () => {
  it.each([
    ['model.vocab_size=1e12', 'model.vocab_size: at most 16777216'],
    ['model.seq_len=100000000', 'model.seq_len: at most 131072'],
    ['model.layers=100000', 'model.layers: at most 1024'],
    ['train.micro_batch=1000000000', 'train.micro_batch: at most 65536'],
    ['parallel.bucket_mb=1e9', 'parallel.bucket_mb: at most 4096'],
  ])('--set %s is refused naming the key', (set, message) => {
    const r = paratrain(['train', '--set', set, '--set', `run.dir=${tmp()}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error [ERR_CONFIG]');
    expect(r.stderr).toContain(message);
  });

  it('a model the machine cannot hold is refused before anything is allocated (train and launch)', () => {
    for (const cmd of [['train'], ['launch', '--nproc-per-node', '2']]) {
      const dir = tmp();
      const r = paratrain([...cmd, '--config', 'bert-mini', '--set', 'model.hidden=65536', '--set', `run.dir=${dir}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/error \[ERR_CONFIG\]: .*would need about [\d.]+ TB of memory, and this machine has/);
      expect(r.stderr).toContain('model.hidden (65536)');
      expect(r.ms).toBeLessThan(20_000);
      expect(fs.readdirSync(dir)).toEqual([]);
    }
  });
});

describe('run directories that cannot hold a run', () => {
  it('a file, a path through a file, and /proc or /sys: ERR_RUN_DIR at once', () => {
    const file = path.join(tmp(), 'a-file');
    fs.writeFileSync(file, 'x');
    const cases: Array<[string, string]> = [
      [file, `run.dir ${file}: it is a file, not a directory`],
      [path.join(file, 'run'), `${file} is a file, not a directory`],
      ['/proc/paratrain-run', '/proc is on proc, a kernel pseudo-filesystem'],
      ['/sys/kernel/paratrain-run', 'is on sysfs, a kernel pseudo-filesystem'],
    ];
    for (const [dir, message] of cases) {
      for (const cmd of ['train', 'launch']) {
        const r = paratrain([cmd, '--config', 'bert-mini', '--set', `run.dir=${dir}`]);
        expect(r.signal, `${cmd} ${dir}`).toBeNull();
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`error [ERR_RUN_DIR]: `);
        expect(r.stderr).toContain(message);
      }
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });

  it('a start that fails leaves the existing run’s config.yaml as it was', () => {
    const dir = tmp();
    const tiny = ['--config', 'gpt-mini', '--set', 'model.layers=1', '--set', 'model.hidden=32', '--set'];
    const sets = ['model.heads=2', '--set', 'model.ffn=64', '--set', 'model.vocab_size=800', '--set'];
    const rest = ['model.seq_len=32', '--set', 'train.steps=2', '--set', 'data.max_documents=20', '--set'];
    const args = [...tiny, ...sets, ...rest, `run.dir=${dir}`];
    expect(paratrain(['train', ...args, '--set', 'checkpoint.every=2']).code).toBe(0);
    const config = fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8');
    // The same run resumed with another model: refused after start (ERR_CHECKPOINT_MISMATCH).
    const r = paratrain(['train', ...args, '--set', 'model.layers=2', '--resume', 'auto']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_CHECKPOINT_MISMATCH]');
    expect(fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8')).toBe(config);
  });
});

describe('addresses', () => {
  it.each([
    ['--master-addr', 'not a host!', `--master-addr 'not a host!' is not a host name or an IP address`],
    ['--master-addr', 'no-such-host.invalid', `--master-addr 'no-such-host.invalid' does not resolve (ENOTFOUND)`],
    ['--host-addr', 'a_b', `--host-addr 'a_b' is not a host name or an IP address`],
  ])('%s %s: a clear message before anything starts', (flag, addr, message) => {
    const r = paratrain(['launch', '--config', 'bert-mini', flag, addr, '--set', `run.dir=${tmp()}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error [ERR_LAUNCH_OPTION]: ${message}`);
  });
});
