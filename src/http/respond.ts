// Writing an HTTP answer: JSON bodies with their status line, and errors as
// {"error":{"code","message"}} with the status the error catalogue gives the code.

import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, type ErrorCode } from '../protocol/errors.ts';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden',
  404: '404 Not Found', 405: '405 Method Not Allowed', 408: '408 Request Timeout', 413: '413 Payload Too Large', 415: '415 Unsupported Media Type',
  426: '426 Upgrade Required', 429: '429 Too Many Requests', 500: '500 Internal Server Error', 503: '503 Service Unavailable',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status} Unknown`;
}

export function sendJson(res: HttpResponse, status: number, body: string): void {
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json').end(body);
  });
}

export function sendError(res: HttpResponse, code: ErrorCode, message?: string): void {
  sendJson(res, ERRORS[code].status, JSON.stringify({ error: { code, message: message ?? ERRORS[code].message } }));
}
