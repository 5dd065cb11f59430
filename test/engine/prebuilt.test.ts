// Which addon file the loader takes (a build from source, else this platform's prebuilt), and the
// fix it names when one does not load (the loader itself: engine.test.ts); `paratrain build`
// refusing to start without its tools.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { addonCandidates, fixForLoadError, prebuiltFile, prebuiltTag } from '../../src/engine/prebuilt';

const root = path.join(__dirname, '..', '..');

describe('prebuilt engine selection', () => {
  it('linux-x64 with glibc has a prebuilt; musl, other systems and other CPUs do not', () => {
    expect(prebuiltTag({ platform: 'linux', arch: 'x64', glibc: '2.36' })).toEqual({ tag: 'linux-x64' });
    expect(prebuiltTag({ platform: 'linux', arch: 'x64' })).toEqual({
      unsupported: expect.stringContaining('needs glibc'),
    });
    expect(prebuiltTag({ platform: 'darwin', arch: 'arm64' })).toEqual({
      unsupported: expect.stringContaining('no prebuilt engine for darwin-arm64'),
    });
    expect(prebuiltTag({ platform: 'linux', arch: 'arm64', glibc: '2.36' })).toEqual({
      unsupported: expect.stringContaining('linux-arm64'),
    });
  });

  it('a build from source comes first, the prebuilt last; PARATRAIN_ADDON alone when set', () => {
    const saved = process.env.PARATRAIN_ADDON;
    delete process.env.PARATRAIN_ADDON;
    try {
      const cpu = addonCandidates('cpu');
      expect(cpu[0]).toBe(path.join(root, 'build-cmake', 'Release', 'paratrain.node'));
      expect(cpu[cpu.length - 1]).toBe(prebuiltFile('linux-x64'));
      expect(addonCandidates('cuda')).not.toContain(prebuiltFile('linux-x64')); // never prebuilt
      process.env.PARATRAIN_ADDON = '/x/paratrain.node';
      expect(addonCandidates('cpu')).toEqual(['/x/paratrain.node']);
    } finally {
      if (saved === undefined) delete process.env.PARATRAIN_ADDON;
      else process.env.PARATRAIN_ADDON = saved;
    }
  });
});

describe('what a failed load means', () => {
  it('a missing shared library names the apt package that provides it', () => {
    expect(fixForLoadError('libzmq.so.5: cannot open shared object file: No such file or directory')).toContain(
      '`apt-get install libzmq5`',
    );
    expect(fixForLoadError('libgomp.so.1: cannot open shared object file: No such file or directory')).toContain(
      '`apt-get install libgomp1`',
    );
    expect(fixForLoadError('libfoo.so.3: cannot open shared object file: No such file or directory')).toBe(
      'libfoo.so.3 is missing: install the package that provides it',
    );
  });

  it('a glibc or libstdc++ older than the build machine asks for a build from source', () => {
    const message =
      "/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.30' not found (required by /p/paratrain.node)";
    expect(fixForLoadError(message)).toContain('needs GLIBCXX_3.4.30');
    expect(fixForLoadError(message)).toContain('`npx paratrain build`');
    expect(fixForLoadError('invalid ELF header')).toBeUndefined();
  });
});

describe('paratrain build', () => {
  it('without cmake and a compiler it names the apt line and builds nothing', () => {
    // PATH holds node only.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-path-'));
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), 'build'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: bin },
    });
    fs.rmSync(bin, { recursive: true, force: true });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('[ERR_BUILD]');
    expect(r.stderr).toContain('cmake');
    expect(r.stderr).toContain('apt-get install build-essential cmake libopenblas-openmp-dev libzmq3-dev');
  });
});
