// build-ts.mjs — builds the TypeScript: generates the protobuf code from proto/*.proto
// (src/generated/proto.js and its .d.ts, by protobufjs's own pbjs/pbts), then compiles src/ to an
// emptied dist/ and copies the generated JavaScript and the dashboard's page beside the compiled code.
// `npm run build:ts` and the test suite's global setup both run it; `--proto-only` stops after the
// generation.
// The generated files are build output (git-ignored): a change to a .proto reaches the types at the
// next build, and nothing hand-kept can drift from it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const protos = ['proto/control.proto', 'proto/checkpoint.proto'];
const outDir = path.join(root, 'src', 'generated');
const js = path.join(outDir, 'proto.js');
const dts = path.join(outDir, 'proto.d.ts');

function bin(pkg, name) {
  return path.join(root, 'node_modules', pkg, 'bin', name);
}

function run(file, args) {
  execFileSync(process.execPath, [file, ...args], { cwd: root, stdio: 'inherit' });
}

/** Regenerates when an output is missing or older than a .proto or this script. */
function generateProto() {
  const inputs = [...protos.map((p) => path.join(root, p)), fileURLToPath(import.meta.url)];
  const newest = Math.max(...inputs.map((f) => fs.statSync(f).mtimeMs));
  if ([js, dts].every((f) => fs.existsSync(f) && fs.statSync(f).mtimeMs >= newest)) return;
  fs.mkdirSync(outDir, { recursive: true });
  // Field names in camelCase, as protobufjs's loader gives them; no services, no length-delimited I/O.
  run(bin('protobufjs-cli', 'pbjs'), [
    '--target',
    'static-module',
    '--wrap',
    'commonjs',
    '--no-delimited',
    '--no-service',
    '--out',
    js,
    ...protos,
  ]);
  run(bin('protobufjs-cli', 'pbts'), ['--out', dts, js]);
}

generateProto();
if (!process.argv.includes('--proto-only')) {
  fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  run(path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), ['-p', root]);
  fs.mkdirSync(path.join(root, 'dist', 'generated'), { recursive: true });
  fs.copyFileSync(js, path.join(root, 'dist', 'generated', 'proto.js'));
  // The dashboard's page is plain HTML/CSS/JS, served as it is: it sits beside the compiled server.
  fs.cpSync(path.join(root, 'src', 'dashboard', 'page'), path.join(root, 'dist', 'dashboard', 'page'), {
    recursive: true,
  });
}
