#!/usr/bin/env node
// The `paratrain` command: runs the compiled CLI (npm run build:ts writes dist/).
'use strict';
let cli;
try {
  cli = require('../dist/cli/main.js');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main')) {
    process.stderr.write(
      'paratrain: the TypeScript build is missing; run `npm run build` (or bash scripts/setup.sh)\n',
    );
    process.exit(1);
  }
  throw err;
}
cli.main(process.argv).then((code) => process.exit(code));
