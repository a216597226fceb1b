// What an operator reads: GET /healthz (200 while serving, 503 once stopping), GET /metrics
// (Prometheus text) and GET /api/stats (the dashboard's JSON).

import type { TemplatedApp } from 'uWebSockets.js';
import type { Config } from '../config.ts';
import type { Health } from '../engine.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { sendError, sendJson } from './respond.ts';

export function registerOps(app: TemplatedApp, health: () => Health, connections: () => number, metrics: Metrics, cfg: Config, log: Logger): void {
  app.get('/healthz', (res) => {
    const h = health();
    const body: Record<string, unknown> = { ok: h.accepting, store: h.storeOk ? 'ok' : 'degraded', reason: h.storeReason, connections: connections(), buffered: h.buffered };
    // A node whose bus is down still serves (rooms catch up from the store), so it stays 200.
    if (h.busUp !== null) body.cluster = { node: cfg.nodeId, bus: h.busUp ? 'up' : 'down' };
    // A failing receiver is said here, but stays 200: restarting the engine would not fix it.
    if (h.hooks !== null) {
      const f = h.hooks.failingSince;
      body.webhooks = { receiver: f === null ? 'ok' : 'failing', failingForMs: f === null ? 0 : Date.now() - f, lastError: f === null ? null : h.hooks.lastError, pending: h.hooks.pending, deadLettered: h.hooks.deadLettered };
    }
    sendJson(res, h.accepting ? 200 : 503, JSON.stringify(body));
  });

  app.get('/metrics', (res) => {
    // prom-client renders asynchronously: register onAborted before the await.
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    metrics.render().then((text) => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', metrics.contentType).end(text);
      });
    }, (err: unknown) => {
      if (aborted) return;
      log.error({ err: String(err), route: '/metrics' }, 'request failed');
      sendError(res, 'internal');
    });
  });

  // The dashboard's one JSON document: counters, buffer depth, p50/p99 from the histograms.
  app.get('/api/stats', (res) => sendJson(res, 200, JSON.stringify(metrics.snapshot())));
}

/** What is left: the WebSocket path asked over plain HTTP, and unknown routes. */
export function registerFallbacks(app: TemplatedApp): void {
  app.get('/ws', (res) => sendError(res, 'invalid', 'this endpoint speaks WebSocket only'));
  app.any('/*', (res, req) => {
    const known = req.getUrl().startsWith('/api/');
    sendError(res, 'not_found', known ? 'no such route (check the method and path)' : 'no such route');
  });
}
