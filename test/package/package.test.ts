// The npm package as a user gets it: `npm pack` (whose prepack builds dist/ and the prebuilt
// engine), the tarball installed into an empty project, and the trainer run there with no build
// step (docs/packaging.md). The dependencies come from the local npm cache when they are in it.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..', '..');

/** The environment without what `npm test` sets for its own package (npm_config_*, npm_package_*). */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD') env[k] = v;
  return env;
}

function run(command: string, args: string[], options: SpawnSyncOptions) {
  const r = spawnSync(command, args, { encoding: 'utf8', env: userEnv(), maxBuffer: 64 << 20, ...options });
  const out = { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
  if (out.code !== 0)
    throw new Error(
      `${command} ${args.join(' ')} exited ${out.code}\n${out.stderr.slice(-4000)}\n${out.stdout.slice(-2000)}`,
    );
  return out;
}

describe('the npm package', () => {
  it('installs from its tarball into an empty project and trains there with the prebuilt engine', () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-package-'));
    try {
      run('npm', ['pack', '--pack-destination', work], { cwd: root });
      const tarball = fs.readdirSync(work).find((f) => f.endsWith('.tgz'));
      expect(tarball).toBeDefined();
      const tgz = path.join(work, tarball!);

      // What runs ships, and nothing else.
      const entries = run('tar', ['-tzf', tgz], {}).stdout.split('\n').filter(Boolean);
      const files = entries.map((e) => e.replace(/^package\//, ''));
      for (const needed of [
        'bin/paratrain.js',
        'dist/index.js',
        'dist/index.d.ts',
        'dist/worker/main.js',
        'dist/dashboard/page/index.html',
        'dist/dashboard/page/dashboard.js',
        'configs/bert-mini.yaml',
        'proto/checkpoint.proto',
        'prebuilds/linux-x64/paratrain.node',
        'CMakeLists.txt',
        'cpp/sources.txt',
        'cpp/napi/addon.cpp',
      ])
        expect(files).toContain(needed);
      const shipsNot =
        /^(src|test|docs|scripts|cmake|\.ci|cpp\/tests|cpp\/kernels\/cuda|build|build-cmake)\/|\.map$|^(tsconfig\.json|eslint\.config\.mjs|vitest\.config\.mts|binding\.gyp|\.prettier)/;
      expect(files.filter((f) => shipsNot.test(f))).toEqual([]);

      const project = path.join(work, 'project');
      fs.mkdirSync(project);
      fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'a-user-project', private: true }));
      run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tgz], { cwd: project });
      const installed = path.join(project, 'node_modules', 'paratrain');
      expect(fs.existsSync(path.join(installed, 'build-cmake'))).toBe(false); // nothing was built

      // npx runs the installed command (were it missing, npx would fetch a package of that name).
      expect(fs.existsSync(path.join(project, 'node_modules', '.bin', 'paratrain'))).toBe(true);
      const help = run('npx', ['paratrain', '--help'], { cwd: project });
      expect(help.stdout).toContain('train');
      expect(help.stdout).toContain('build');

      // A preset by name, the bundled corpus from inside the package, cache and run directory
      // relative to the working directory.
      const train = run('npx', ['paratrain', 'train', '--config', 'bert-mini', '--set', 'train.steps=5'], {
        cwd: project,
      });
      expect(train.stderr).toContain('trained steps 1..5');
      expect(fs.existsSync(path.join(project, 'runs', 'bert-mini', 'checkpoints', 'step-0000005'))).toBe(true);
      expect(fs.existsSync(path.join(project, '.paratrain-cache'))).toBe(true);

      // The library face, from CommonJS and from an ES module, with the prebuilt engine loaded.
      const cjs = run(
        process.execPath,
        [
          '-e',
          `const p = require('paratrain');
           p.loadNative('cpu');
           const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
           console.log(JSON.stringify({
             api: ['train', 'launch', 'runBench', 'exportCheckpointToHf', 'importHfToCheckpoint', 'verifyCheckpoint', 'listCheckpoints'].map((k) => typeof p[k]),
             prebuilt: maps.includes('prebuilds/linux-x64/paratrain.node'),
           }));`,
        ],
        { cwd: project },
      );
      expect(JSON.parse(cjs.stdout)).toEqual({ api: Array(7).fill('function'), prebuilt: true });
      const esm = run(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { train, launch } from 'paratrain'; console.log(typeof train, typeof launch);`,
        ],
        { cwd: project },
      );
      expect(esm.stdout.trim()).toBe('function function');
      expect(fs.existsSync(path.join(installed, 'dist', 'index.d.ts'))).toBe(true);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }, 900_000);
});
