// Structured logs (pino, JSON lines on stderr). Never log message text or tokens: callers pass
// ids, counts and reasons only, and the redact list below catches the usual secret fields.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['token', 'authorization', 'jwtSecret', 'text', '*.token', '*.text', '*.jwtSecret'], censor: '[redacted]' },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}
