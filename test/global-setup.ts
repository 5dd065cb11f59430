// Compiles src/ to dist/ once before the suite, so tests that run the `paratrain` command run the
// code under test, never a stale build (dist/ is emptied first: a file whose source is gone, or became
// a directory, must not shadow the new module).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export default function setup() {
  const root = path.join(__dirname, '..');
  fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root], {
    stdio: 'inherit',
  });
}
