// Compiles src/ to dist/ once before the suite, so tests that run the `paratrain` command run the
// code under test, never a stale build.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export default function setup() {
  const root = path.join(__dirname, '..');
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root], {
    stdio: 'inherit',
  });
}
