// The web client at `/` and the live dashboard at `/dashboard`: self-contained pages (no CDN),
// served with a CSP that allows only themselves and this host.

import { readFileSync } from 'node:fs';
import type { TemplatedApp } from 'uWebSockets.js';
import { sendError } from './respond.ts';

const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function loadPage(file: string): string | null {
  try {
    return readFileSync(new URL(`../web/${file}`, import.meta.url), 'utf8');
  } catch {
    return null;
  }
}

export function registerPages(app: TemplatedApp): void {
  const servePage = (path: string, file: string, missing: string): void => {
    const page = loadPage(file);
    app.get(path, (res) => {
      if (page === null) return sendError(res, 'not_found', missing);
      res.cork(() => {
        res.writeStatus('200 OK')
          .writeHeader('content-type', 'text/html; charset=utf-8')
          .writeHeader('content-security-policy', CSP)
          .writeHeader('x-content-type-options', 'nosniff')
          .writeHeader('referrer-policy', 'no-referrer')
          .end(page);
      });
    });
  };
  servePage('/', 'index.html', 'the web client is not built into this engine');
  servePage('/dashboard', 'dashboard.html', 'the dashboard is not built into this engine');
}
