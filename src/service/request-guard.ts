// The two checks `t3d serve` makes before any route, against the ways a web page in the user's browser can reach a
// server on loopback:
// - DNS rebinding: a page on attacker.example whose name re-resolves to 127.0.0.1 sends its requests (and reads the
//   answers) with `Host: attacker.example`. Every request must name this server in its Host header: a loopback name,
//   the address it listens on, or a name given with --allow-host, with the server's port. Anything else is 421
//   Misdirected Request ("this server is not the one for that authority"; 403 would read as a permission a token
//   could grant, which it is not). A request without a Host header (HTTP/1.0; Node refuses HTTP/1.1 without one)
//   is let through: browsers always send one, so a missing Host is never a rebinding page.
// - cross-site posts (CSRF, blind uploads): a page may POST a `text/plain` body to localhost without a CORS
//   preflight. Every request other than GET/HEAD is refused (403) when its browser-set headers say it comes from
//   another site: Sec-Fetch-Site other than same-origin/none, or an Origin other than this server's own. Requests
//   with neither header are not from a browser (curl, scripts) and pass; with --token they are authenticated anyway.
import type { IncomingMessage } from 'node:http';
import { networkInterfaces, hostname } from 'node:os';
import { ClientError } from './client-error.js';

const LOOPBACK = ['127.0.0.1', 'localhost', '[::1]'];
const WILDCARD = ['0.0.0.0', '::', '[::]'];

/** A host as it appears in a URL authority: IPv6 literals in brackets, names lower case. */
export function authorityHost(host: string): string {
  const h = host.trim().toLowerCase();
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}

/** Host and port of a Host header value ('name', 'name:port', '[v6]', '[v6]:port'); port undefined when absent. */
function splitHost(value: string): { host: string; port?: string } {
  const v = value.trim().toLowerCase();
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(v);
  if (!m) return { host: v };
  return { host: m[1]!, port: m[2] || undefined };
}

/** An origin in URL's normal form (default port left out, names lower case); 'null' and junk stay apart. */
function originOf(value: string): string {
  try {
    return new URL(value).origin;
  } catch {
    return `invalid:${value}`;
  }
}

export interface GuardOptions {
  /** the address the server listens on (--host) */
  listenHost: string;
  port: number;
  /** further names to accept in Host (--allow-host) */
  allowedHosts?: readonly string[];
}

/** The names (authority form, lower case) a Host header may give for a server listening on `listenHost`. */
export function acceptedHosts(o: Omit<GuardOptions, 'port'>): Set<string> {
  const names = new Set([...LOOPBACK, ...(o.allowedHosts ?? []).map(authorityHost)]);
  const listen = authorityHost(o.listenHost);
  if (WILDCARD.includes(listen)) {
    // bound to every interface: this machine's own addresses and name are the host itself
    for (const a of Object.values(networkInterfaces()).flat()) if (a) names.add(authorityHost(a.address));
    names.add(authorityHost(hostname()));
  } else names.add(listen);
  return names;
}

/** A check for every request: throws a ClientError (421 or 403) for what a page on another site could send. */
export function requestGuard(o: GuardOptions): (req: IncomingMessage) => void {
  const names = acceptedHosts(o);
  const port = String(o.port);
  return (req) => {
    const given = req.headers.host;
    if (given !== undefined) {
      const { host, port: p } = splitHost(given);
      // a browser leaves the port out only for the scheme's default (80 for http)
      if (!names.has(host) || (p ?? '80') !== port)
        throw new ClientError(
          421,
          `this server does not answer for the host '${given}' (a page on another name may be rebinding it to ` +
            `this machine); open it as http://127.0.0.1:${port}/, or start it with --allow-host ${host || '<name>'}`,
        );
    }
    if (req.method === 'GET' || req.method === 'HEAD') return;
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none')
      throw new ClientError(403, `a ${site} ${req.method} request is refused: only this server's own page may send it`);
    const origin = req.headers.origin;
    if (origin !== undefined && (given === undefined || originOf(origin) !== originOf(`http://${given}`)))
      throw new ClientError(
        403,
        `a ${req.method} request from the origin '${origin}' is refused: only this server's own page may send it`,
      );
  };
}
