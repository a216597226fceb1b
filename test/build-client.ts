// Vitest global setup: build the client library (client/dist) once before any suite runs. The
// engine serves client/dist to the browser page, so a fresh clone must have it built.

import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

export default function setup(): void {
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'client', 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' });
}
