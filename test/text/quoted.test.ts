// Values from users' files quoted in error messages: short, and never a throw of their own.
import { describe, expect, it } from 'vitest';
import { MAX_QUOTED_CHARS, quoted, truncated } from '../../src/text/quoted';

describe('quoted', () => {
  it('shows small values as JSON and says "nothing" for a missing one', () => {
    expect(quoted('absolute')).toBe('"absolute"');
    expect(quoted(['BertModel'])).toBe('["BertModel"]');
    expect(quoted(null)).toBe('null');
    expect(quoted(undefined)).toBe('nothing');
  });

  it('cuts a long value and counts what it left off', () => {
    const shown = quoted('y'.repeat(10_000));
    expect(shown).toBe(`"${'y'.repeat(MAX_QUOTED_CHARS - 1)}… (${10_002 - MAX_QUOTED_CHARS} more characters)`);
    expect(truncated('short', 10)).toBe('short');
  });

  it('names the kind of a value JSON cannot show instead of throwing', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(quoted(cycle)).toBe('an object nested too deeply or circular, which cannot be shown');
    expect(quoted(10n)).toBe('a bigint that cannot be shown');
    expect(quoted(JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`))).toBe('a list nested too deeply to show');
  });
});
