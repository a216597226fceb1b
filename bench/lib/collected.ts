// The engine's memory after a full collection: its test hooks (CHAT_TEST_HOOKS=1) answer
// POST /_test/gc by collecting every thread's heap in full, then report process.memoryUsage().

/** RSS (MB) after a full collection in every thread of the engine; null when it has no test hooks (a peer). */
export async function collectedRssMb(httpBase: string): Promise<number | null> {
  try {
    const res = await fetch(`${httpBase}/_test/gc`, { method: 'POST', signal: AbortSignal.timeout(15_000) });
    if (res.status !== 200) return null;
    return ((await res.json()) as { rss: number }).rss / 1048576;
  } catch {
    return null;
  }
}
