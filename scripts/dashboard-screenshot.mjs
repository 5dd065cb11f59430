// dashboard-screenshot.mjs — a PNG of `paratrain dashboard RUN_DIR` as chromium draws it (headless,
// through playwright-core), for the docs: node scripts/dashboard-screenshot.mjs RUN_DIR [OUT.png]
// (default docs/images/dashboard.png). Needs chromium (scripts/setup.sh) and `npm run build:ts`.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const [runDir, out = path.join(root, 'docs', 'images', 'dashboard.png')] = process.argv.slice(2);
if (!runDir) {
  process.stderr.write('usage: node scripts/dashboard-screenshot.mjs RUN_DIR [OUT.png]\n');
  process.exit(2);
}

const server = spawn(process.execPath, [path.join(root, 'bin', 'paratrain.js'), 'dashboard', runDir, '--port', '0'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
try {
  const url = await new Promise((resolve, reject) => {
    let text = '';
    server.stdout.on('data', (c) => {
      text += c;
      const m = /(http:\/\/\S+\/)/.exec(text);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`paratrain dashboard exited ${code}`)));
  });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(url);
    await page.waitForSelector('#latest:not([data-step=""])');
    await page.waitForTimeout(300); // the first draw is coalesced over 50 ms
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    process.stdout.write(`wrote ${out}\n`);
  } finally {
    await browser.close();
  }
} finally {
  server.kill('SIGTERM');
}
