// refusal-log.ts — one rate-limited log of refused peers (connections beyond the caps, failed or
// missing handshakes, messages ZAP says no to), for the coordinator's port and the workers' rings:
// a peer retries and a flood is cheap, so each address is named once and the rest only counted.
import type pino from 'pino';

/** Addresses whose first refusal is logged; refusals after that are counted, one line per REFUSED_LOG_EVERY. */
export const REFUSED_ADDRESSES_LOGGED = 20;
export const REFUSED_LOG_EVERY = 1000;

/** `refused(address, text, count = 1)`: `count` refusals of `address`, described by `text`. */
export type RefusalLog = (address: string, text: string, count?: number) => void;

export function refusalLog(log: pino.Logger): RefusalLog {
  let total = 0;
  let countedAloud = false;
  const named = new Set<string>();
  return (address, text, count = 1) => {
    const before = total;
    total += count;
    if (!named.has(address) && named.size < REFUSED_ADDRESSES_LOGGED) {
      named.add(address);
      log.warn({ address, refused: total }, text);
    } else if (!countedAloud || Math.floor(before / REFUSED_LOG_EVERY) !== Math.floor(total / REFUSED_LOG_EVERY)) {
      countedAloud = true;
      log.warn(
        { address, refused: total },
        `${text} (${total} refused so far; each address is named once, then one line per ${REFUSED_LOG_EVERY})`,
      );
    }
  };
}
