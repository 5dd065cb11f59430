/**
 * Values from users' files shown in error messages. A message must stay short and must not itself throw:
 * JSON.stringify recurses, so a value nested a few thousand levels deep (which JSON.parse reads fine)
 * raises RangeError, and a 50 MB string would go into the log whole.
 */

/** Longest quoted value in a message, before the "… (N more characters)" tail. */
export const MAX_QUOTED_CHARS = 200;
/** Longest list of names (a model's labels) in a message. */
const MAX_LISTED_CHARS = 1000;

/** `text` itself when at most `max` characters, else its first `max` and how many were left off. */
export function truncated(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** `value` as JSON (strings in double quotes), cut to `max` characters; never throws. */
export function quoted(value: unknown, max: number = MAX_QUOTED_CHARS): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // Too deep for the recursion, a BigInt or a cycle: say what kind of value it is instead.
    if (Array.isArray(value)) text = 'a list nested too deeply to show';
    else if (typeof value === 'object') text = 'an object nested too deeply or circular, which cannot be shown';
    else text = `a ${typeof value} that cannot be shown`;
  }
  return truncated(text, max);
}

/** A name from a user's file in single quotes, cut to MAX_QUOTED_CHARS: `'B-PER'`. */
export function named(text: string): string {
  return `'${truncated(text, MAX_QUOTED_CHARS)}'`;
}

/** Names in single quotes, comma-separated, the whole list cut to MAX_LISTED_CHARS. */
export function listed(names: readonly string[]): string {
  return truncated(names.map((n) => `'${n}'`).join(', '), MAX_LISTED_CHARS);
}
