// build-command.ts — `paratrain build`: builds the CPU engine from source inside the installed
// package (or the checkout), for a machine that no prebuilt engine fits. It runs the package's own
// `npm run build:native` (cmake-js over CMakeLists.txt, output build-cmake/, which the loader tries
// first) and then loads what it built. Problems are thrown as BuildErrors; main.ts prints them.
import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

import { loadedAddonFile, loadNative } from '../engine/native';
import { BUILD_PREREQUISITES } from '../engine/prebuilt';
import { PACKAGE_ROOT } from '../package-root';

export class BuildError extends Error {
  readonly code = 'ERR_BUILD';
}

/** The tools a build needs before it starts, each checked by running it. */
const TOOLS = [
  { command: 'cmake', args: ['--version'] },
  { command: 'c++', args: ['--version'] },
  { command: 'npm', args: ['--version'] },
];

export function registerBuildCommand(program: Command) {
  program
    .command('build')
    .description('build the CPU engine from source (when no prebuilt engine fits this machine)')
    .action(() => buildFromSource());
}

function buildFromSource() {
  const missing = TOOLS.filter(({ command, args }) => spawnSync(command, args, { stdio: 'ignore' }).error).map(
    (t) => t.command,
  );
  if (missing.length)
    throw new BuildError(
      `${missing.join(', ')} not found on PATH: install the build tools with \`${BUILD_PREREQUISITES}\``,
    );
  try {
    fs.accessSync(PACKAGE_ROOT, fs.constants.W_OK);
  } catch {
    throw new BuildError(
      `cannot write to ${PACKAGE_ROOT}: run the build as the user who installed paratrain (a global install may need sudo)`,
    );
  }
  process.stderr.write(`paratrain: building the CPU engine in ${PACKAGE_ROOT} (a few minutes)\n`);
  const build = spawnSync('npm', ['run', 'build:native'], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
  if (build.status !== 0)
    throw new BuildError(
      `the build failed (npm run build:native in ${PACKAGE_ROOT}, exit ${build.status ?? build.signal}); ` +
        `its output above names the cause. It needs \`${BUILD_PREREQUISITES}\``,
    );
  const addon = loadNative('cpu');
  process.stderr.write(`paratrain: built ${loadedAddonFile()} (${addon.backend}, OpenBLAS ${addon.blasCore})\n`);
}
