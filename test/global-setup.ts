// Builds once before the suite (scripts/build-ts.mjs: the protobuf code generated from proto/, then
// src/ compiled to an emptied dist/), so tests that run the `paratrain` command run the code under
// test, never a stale build (a file whose source is gone, or became a directory, must not shadow the
// new module), and tests that import src/ find the generated code.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export default function setup() {
  const root = path.join(__dirname, '..');
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build-ts.mjs')], { stdio: 'inherit' });
}
