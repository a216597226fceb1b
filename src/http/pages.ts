// The web client at `/` with its script (/app.js), styles (/app.css) and the client library's ES
// modules (/client/<file>.js, built to client/dist), and the live dashboard at `/dashboard`. All
// come from this origin (no CDN). The web client's CSP allows no inline script or style and no
// other host; the dashboard is one self-contained page with inline script.

import { readdirSync, readFileSync } from 'node:fs';
import type { TemplatedApp } from 'uWebSockets.js';
import type { Logger } from '../log.ts';
import { sendError } from './respond.ts';

const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const DASHBOARD_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const HTML = 'text/html; charset=utf-8';
const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';
const NO_CLIENT = 'the web client is not built into this engine';

function load(url: URL): string | null {
  try {
    return readFileSync(url, 'utf8');
  } catch {
    return null;
  }
}

/** The client library's ES modules (client/dist/*.js) by file name; empty when it is not built. */
function clientModules(): Map<string, string> {
  const dir = new URL('../../client/dist/', import.meta.url);
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const body = /^[a-z-]+\.js$/.test(name) ? load(new URL(name, dir)) : null;
    if (body !== null) out.set(name, body);
  }
  return out;
}

export function registerPages(app: TemplatedApp, log: Logger): void {
  /** A file read once at start; `missing` answers 404 when it is not there. */
  const serve = (path: string, body: string | null, type: string, csp: string | null, missing: string): void => {
    app.get(path, (res) => {
      if (body === null) return sendError(res, 'not_found', missing);
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', type);
        if (csp !== null) res.writeHeader('content-security-policy', csp);
        res.writeHeader('x-content-type-options', 'nosniff').writeHeader('referrer-policy', 'no-referrer').end(body);
      });
    });
  };
  const web = (file: string): string | null => load(new URL(`../web/${file}`, import.meta.url));
  serve('/', web('index.html'), HTML, PAGE_CSP, NO_CLIENT);
  serve('/app.js', web('app.js'), JS, null, NO_CLIENT);
  serve('/app.css', web('app.css'), CSS, null, NO_CLIENT);
  serve('/dashboard', web('dashboard.html'), HTML, DASHBOARD_CSP, 'the dashboard is not built into this engine');
  const lib = clientModules();
  if (lib.size === 0) log.warn({}, 'the client library is not built (client/dist): the web client at / cannot run; run npm run build');
  for (const [name, body] of lib) serve(`/client/${name}`, body, JS, null, NO_CLIENT);
}
