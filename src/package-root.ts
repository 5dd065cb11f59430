// package-root.ts — where the installed package lives (package.json, configs/, bin/, the native
// builds), and its version. This file is src/package-root.ts, compiled to dist/package-root.js, so
// the root is one directory up either way (vitest runs src/, the `paratrain` command dist/).
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The directory holding package.json. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..');

let cachedVersion: string | undefined;

/** package.json's version ('0.0.0' when it cannot be read). */
export function paratrainVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
        version?: unknown;
      };
      cachedVersion = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
    } catch {
      cachedVersion = '0.0.0';
    }
  }
  return cachedVersion;
}
