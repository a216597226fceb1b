// `--webhook`: chat with the engine's webhooks pointed at a receiver that answers every request
// after 2 s (slow), at a port that refuses connections (refuse), or with no webhook (none), so
// one bench run shows what a bad receiver costs chat. Both receivers live on loopback.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type WebhookVariant = 'none' | 'slow' | 'refuse';

/** The engine's settings for a variant, and how to stop its receiver. */
export interface WebhookTarget {
  env: Record<string, string>;
  /** Requests the receiver got (slow), for the report. */
  requests(): number;
  stop(): Promise<void>;
}

const SECRET = 'bench-webhook-secret-0123456789';
/** How long the slow receiver takes to answer. */
export const SLOW_MS = 2000;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

export async function webhookTarget(v: WebhookVariant): Promise<WebhookTarget> {
  // Public rooms (the chat scenario's) write message events only with CHAT_WEBHOOK_PUBLIC.
  const env = (port: number): Record<string, string> => ({ CHAT_WEBHOOK_URL: `http://127.0.0.1:${port}/hook`, CHAT_WEBHOOK_SECRET: SECRET, CHAT_WEBHOOK_PUBLIC: '1' });
  if (v === 'none') return { env: {}, requests: () => 0, stop: async () => {} };
  if (v === 'refuse') {
    // A port that was just free and is closed again: connections to it are refused.
    const s = createServer();
    const port = await listen(s);
    await close(s);
    return { env: env(port), requests: () => 0, stop: async () => {} };
  }
  let n = 0;
  const timers = new Set<NodeJS.Timeout>();
  const s = createServer((req, res) => {
    n++;
    req.resume();
    const t = setTimeout(() => { timers.delete(t); res.writeHead(204).end(); }, SLOW_MS);
    timers.add(t);
  });
  const port = await listen(s);
  return { env: env(port), requests: () => n, stop: async () => { for (const t of timers) clearTimeout(t); await close(s); } };
}
