// listen-address.ts — the dashboard's --port and --dashboard [HOST:]PORT flags, shared by
// `paratrain dashboard`, `train` and `launch`: a port alone means loopback.
import { DashboardError, DEFAULT_HOST } from './server';

/** A port number from a flag, or a DashboardError naming the flag. */
export function parsePort(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || n > 65535)
    throw new DashboardError('ERR_DASHBOARD_OPTION', `${flag}: '${text}' is not a port number (0 to 65535)`);
  return n;
}

/** '6006', '0.0.0.0:6006', '[::1]:6006'. */
export function parseListenAddress(flag: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]+):)?([^:]+)$/.exec(text.trim());
  if (!m)
    throw new DashboardError('ERR_DASHBOARD_OPTION', `${flag}: '${text}' is not [HOST:]PORT (e.g. 6006, 0.0.0.0:6006)`);
  return { host: m[1] ?? m[2] ?? DEFAULT_HOST, port: parsePort(flag, m[3]) };
}
