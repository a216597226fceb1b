// native/: the loaded module is the C++ binary, not the package's JS emulation.

import { describe, expect, it } from 'vitest';
import { expectedBinaryName, nativeInfo, uws } from '../native/uws.ts';

describe('native uWebSockets.js', () => {
  it('loads the platform binary and exposes the native API', () => {
    expect(nativeInfo.binary.endsWith(expectedBinaryName())).toBe(true);
    expect(nativeInfo.version).toMatch(/^20\.30\./);
    expect(typeof uws.App).toBe('function');
    expect(typeof uws.SHARED_COMPRESSOR).toBe('number');
    const app = uws.App();
    expect(typeof app.publish).toBe('function');
    expect(typeof app.numSubscribers).toBe('function');
  });
});
