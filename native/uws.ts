// The native boundary: load uWebSockets.js and prove the native binary is what runs.
// The package we install (an alias of @trufflesuite/uws-js-unofficial) silently falls back to a
// pure-JS emulation built on `ws` when its binary does not load; that fallback is ~10x slower and
// lacks native topics, so we refuse to start on it instead of quietly benchmarking the wrong thing.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as UwsTypes from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export type Uws = typeof UwsTypes;

export interface NativeInfo {
  /** Version of the uWS package (the native binary is built from the same tag). */
  version: string;
  /** Absolute path of the loaded `.node` binary. */
  binary: string;
}

export class NativeLoadError extends Error {
  override name = 'NativeLoadError';
}

function packageDir(): string {
  // package.json is not in the package's "exports", so resolve the entry point and walk up.
  return dirname(dirname(require.resolve('uWebSockets.js')));
}

/** The binary name the package would load on this platform, e.g. uws_linux_x64_115.node. */
export function expectedBinaryName(): string {
  return `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
}

function load(): { uws: Uws; info: NativeInfo } {
  if (/^(1|true)$/i.test(process.env.UWS_USE_FALLBACK ?? '')) {
    throw new NativeLoadError(
      'UWS_USE_FALLBACK is set: the engine refuses the pure-JS uWebSockets.js emulation. Unset it.',
    );
  }
  const dir = packageDir();
  const binary = join(dir, 'binaries', expectedBinaryName());
  const version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  if (!existsSync(binary)) {
    throw new NativeLoadError(
      `uWebSockets.js ${version} ships no native binary for this platform ` +
        `(${process.platform}/${process.arch}, Node ABI ${process.versions.modules}, expected ${expectedBinaryName()}). ` +
        'Run the engine on Linux, macOS or Windows x64/arm64 with Node 20 (ABI 115), ' +
        'or install a uWebSockets.js build matching this Node version.',
    );
  }
  let uws: Uws;
  try {
    // Require the binary directly: the package entry would swallow a load failure and fall back.
    uws = require(binary) as Uws;
  } catch (err) {
    throw new NativeLoadError(
      `the native uWebSockets.js binary ${binary} failed to load: ${(err as Error).message}. ` +
        'This usually means a glibc or Node ABI mismatch; use Node 20 on glibc >= 2.28.',
    );
  }
  // A native module exposes the C++ topic/compressor API; the JS emulation does not.
  if (typeof uws.App !== 'function' || typeof (uws as unknown as { getParts?: unknown }).getParts !== 'function'
    || typeof uws.SHARED_COMPRESSOR !== 'number') {
    throw new NativeLoadError(`${binary} loaded but does not look like native uWebSockets.js`);
  }
  return { uws, info: { version, binary } };
}

const loaded = load();

/** The native uWebSockets.js module. Importing this file throws NativeLoadError if it is not native. */
export const uws: Uws = loaded.uws;
export const nativeInfo: NativeInfo = loaded.info;
