#!/usr/bin/env node
// The `uchat` command: runs the compiled engine (dist/, made by `npm run build`).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error(`uchat: no build at ${new URL('../dist/', import.meta.url).pathname}: run \`npm run build\` first (it needs the dev dependencies: \`npm ci\`)`);
  process.exit(1);
}
await import(cli.href);
