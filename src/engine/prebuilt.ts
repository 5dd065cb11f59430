// prebuilt.ts — where the addon's files are (a build from source, or the prebuilt binary the npm
// package ships for this platform) and what a failed load means for the user (docs/packaging.md).
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../package-root';

/** The one command that builds the engine from source, named by every message that needs it. */
export const BUILD_COMMAND = 'npx paratrain build';

/** What a build from source needs, as the apt line that installs it. */
export const BUILD_PREREQUISITES = 'apt-get install build-essential cmake libopenblas-openmp-dev libzmq3-dev';

/** The platforms the package ships a prebuilt CPU addon for: prebuilds/<tag>/paratrain.node. */
export const PREBUILT_PLATFORMS = ['linux-x64'] as const;

/** What picks a prebuilt: the OS, the CPU and, on Linux, the glibc version (none on musl). */
export interface SystemKind {
  platform: string;
  arch: string;
  glibc?: string;
}

export function thisSystem(): SystemKind {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return { platform: process.platform, arch: process.arch, glibc: report?.header?.glibcVersionRuntime };
}

/**
 * A system's prebuilt tag, e.g. 'linux-x64', or why no prebuilt can fit it. The prebuilt is
 * linked against glibc, so a musl system (Alpine) needs a build from source.
 */
export function prebuiltTag(system: SystemKind = thisSystem()): { tag: string } | { unsupported: string } {
  const tag = `${system.platform}-${system.arch}`;
  if (!(PREBUILT_PLATFORMS as readonly string[]).includes(tag))
    return { unsupported: `no prebuilt engine for ${tag} in this package (it has ${PREBUILT_PLATFORMS.join(', ')})` };
  if (system.platform === 'linux' && !system.glibc)
    return { unsupported: `the prebuilt engine for ${tag} needs glibc; this system's C library is another (musl?)` };
  return { tag };
}

/** The prebuilt CPU addon's path for a tag. */
export function prebuiltFile(tag: string): string {
  return path.join(PACKAGE_ROOT, 'prebuilds', tag, 'paratrain.node');
}

/**
 * Where each build variant is looked for, in order: PARATRAIN_ADDON alone when set; else a build
 * from source (cmake-js, then binding.gyp), which exists only when someone built one and so wins;
 * then the prebuilt binary for this platform. The CUDA addon is never prebuilt.
 */
export function addonCandidates(variant: 'cpu' | 'cuda'): string[] {
  if (process.env.PARATRAIN_ADDON) return [path.resolve(process.env.PARATRAIN_ADDON)];
  if (variant === 'cuda') return [path.join(PACKAGE_ROOT, 'build-cmake', 'Release', 'paratrain_cuda.node')];
  const fromSource = [
    path.join(PACKAGE_ROOT, 'build-cmake', 'Release', 'paratrain.node'),
    path.join(PACKAGE_ROOT, 'build', 'Release', 'paratrain.node'), // binding.gyp build
  ];
  const platform = prebuiltTag();
  return 'tag' in platform ? [...fromSource, prebuiltFile(platform.tag)] : fromSource;
}

/** The Debian/Ubuntu package that provides each shared library the addon may need at run time. */
const RUNTIME_PACKAGES: Record<string, string> = {
  'libzmq.so.5': 'libzmq5',
  'libgomp.so.1': 'libgomp1',
  'libstdc++.so.6': 'libstdc++6',
  'libopenblas.so.0': 'libopenblas0-openmp', // only a build from source linked to the shared OpenBLAS
};

/**
 * The fix for one failed load, from the dynamic loader's message: a missing shared library names
 * the apt package that provides it; a too-old glibc or libstdc++ means this prebuilt cannot run
 * here and the engine has to be built from source. Undefined when the message is neither.
 */
export function fixForLoadError(message: string): string | undefined {
  const missing = /(lib[\w+.-]+\.so[.\d]*): cannot open shared object file/.exec(message)?.[1];
  if (missing) {
    const pkg = RUNTIME_PACKAGES[missing];
    return pkg
      ? `${missing} is missing: \`apt-get install ${pkg}\` (or your distribution's package of it)`
      : `${missing} is missing: install the package that provides it`;
  }
  const version = /version `((?:GLIBC|GLIBCXX|CXXABI)_[\d.]+)' not found/.exec(message)?.[1];
  if (version)
    return `this system's C/C++ runtime is older than the one the engine was built against (it needs ${version}): build it here with \`${BUILD_COMMAND}\``;
  return undefined;
}
