// A request body: JSON, at most MAX_BODY bytes, read from uWS's chunks (copied: uWS reuses them).

import type { HttpResponse } from 'uWebSockets.js';
import { ChatError } from '../protocol/errors.ts';

const MAX_BODY = 64 * 1024;

/** Read a JSON body of at most MAX_BODY bytes; undefined when it is empty. */
export function readBody(res: HttpResponse, contentType: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (contentType !== '' && !contentType.toLowerCase().startsWith('application/json')) {
      // Drain nothing; answer at once.
      reject(new ChatError('invalid', 'send the body as application/json'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > MAX_BODY) {
        failed = true;
        reject(new ChatError('too_large', `the body exceeds ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory after this call
      if (isLast) {
        const text = Buffer.concat(chunks).toString('utf8');
        if (text.trim() === '') return resolve(undefined);
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new ChatError('invalid', 'the body is not valid JSON'));
        }
      }
    });
  });
}
