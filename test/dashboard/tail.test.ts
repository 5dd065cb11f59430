// LogTail: the complete lines added since the last look, whatever the writes' boundaries.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { LogTail } from '../../src/dashboard/tail';

describe('LogTail', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-tail-'));
  const file = path.join(dir, 'log.jsonl');
  afterEach(() => fs.rmSync(file, { force: true }));

  it('waits for a file that is not there, then for each line to end; a cut UTF-8 character stays whole', () => {
    const lines: string[] = [];
    const tail = new LogTail(file, (l) => lines.push(l));
    tail.poll();
    expect(lines).toEqual([]);
    const e = Buffer.from('é'); // two bytes
    fs.writeFileSync(file, Buffer.concat([Buffer.from('{"msg":"caf'), e.subarray(0, 1)]));
    tail.poll();
    expect(lines).toEqual([]);
    fs.appendFileSync(file, Buffer.concat([e.subarray(1), Buffer.from('"}\n\n{"a":1}\n{"b"')]));
    tail.poll();
    expect(lines).toEqual(['{"msg":"café"}', '{"a":1}']);
    fs.appendFileSync(file, ':2}\n');
    tail.poll();
    expect(lines).toEqual(['{"msg":"café"}', '{"a":1}', '{"b":2}']);
  });

  it('starts again from the top when the file gets shorter (a new run in the same directory)', () => {
    const lines: string[] = [];
    let resets = 0;
    const tail = new LogTail(
      file,
      (l) => lines.push(l),
      () => (resets += 1),
    );
    fs.writeFileSync(file, '{"step":1}\n{"step":2}\n');
    tail.poll();
    fs.writeFileSync(file, '{"x":1}\n');
    tail.poll();
    expect(resets).toBe(1);
    expect(lines).toEqual(['{"step":1}', '{"step":2}', '{"x":1}']);
  });
});
