// slurm-hostlist.ts — Slurm's compressed host lists (SLURM_JOB_NODELIST): `gpu[01-04,07],login2`
// means gpu01 gpu02 gpu03 gpu04 gpu07 login2. The launcher needs the first host: node 0, where the
// coordinator runs.
import { LaunchError } from './errors';

function malformed(list: string, why: string): LaunchError {
  return new LaunchError('ERR_LAUNCH_ENV', `SLURM_JOB_NODELIST '${list}' is not a Slurm host list: ${why}`);
}

/** Splits on commas that are not inside brackets. */
function topLevelItems(list: string): string[] {
  const items: string[] = [];
  let depth = 0,
    start = 0;
  for (let i = 0; i < list.length; i++) {
    const ch = list[i];
    if (ch === '[') depth++;
    else if (ch === ']') depth--;
    if (depth < 0 || depth > 1) throw malformed(list, `unbalanced '[' ']' at position ${i}`);
    if (ch === ',' && depth === 0) {
      items.push(list.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw malformed(list, "a '[' is never closed");
  items.push(list.slice(start));
  return items.map((s) => s.trim()).filter((s) => s.length > 0);
}

/** `01-04,07` -> ['01', '02', '03', '04', '07']; numbers keep the width of the range's first bound. */
function expandRanges(list: string, spec: string): string[] {
  return spec.split(',').flatMap((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw malformed(list, `'${part}' is not a number or a range like 01-04`);
    const [lo, hi = m[1]] = [m[1], m[2]];
    const from = parseInt(lo, 10),
      to = parseInt(hi, 10);
    if (to < from) throw malformed(list, `range ${part} runs backwards`);
    return Array.from({ length: to - from + 1 }, (_, i) => String(from + i).padStart(lo.length, '0'));
  });
}

/** One item such as `rack[1-2]-gpu[01-02]`, expanded in order (the rightmost bracket varies fastest). */
function expandItem(list: string, item: string): string[] {
  let hosts = [''];
  const re = /\[([^\]]*)\]/g;
  let last = 0;
  for (let m = re.exec(item); m; m = re.exec(item)) {
    const prefix = item.slice(last, m.index);
    const values = expandRanges(list, m[1]);
    hosts = hosts.flatMap((h) => values.map((v) => h + prefix + v));
    last = m.index + m[0].length;
  }
  const suffix = item.slice(last);
  return hosts.map((h) => h + suffix);
}

export function expandHostlist(list: string): string[] {
  const hosts = topLevelItems(list).flatMap((item) => expandItem(list, item));
  if (hosts.length === 0) throw malformed(list, 'it names no host');
  return hosts;
}

export function firstHost(list: string): string {
  return expandHostlist(list)[0];
}
