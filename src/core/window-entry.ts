// What a hot window's entry costs against CHAT_WINDOW_BYTES and CHAT_WINDOWS_MAX_BYTES: its
// JSON's bytes plus what it holds of the heap beyond them. No imports: the config's help texts
// and the metrics name the figure too.

/**
 * What an entry holds of the heap beyond its JSON's bytes: the JSON string's header, the id
 * string, the sender's string when not shared with the entry before, a slot in each of the six
 * rings. Measured: 137-139 bytes per entry with 76-200 entries per room, each window's own
 * objects included (`node --expose-gc --import tsx scripts/window-memory.ts`), rounded up. V8
 * keeps a string with any character past Latin-1 at two bytes a character, so such a text can
 * take up to twice its UTF-8 bytes (and CJK text less than them).
 */
export const ENTRY_BYTES = 140;

/** What a message's JSON costs a window. */
export function entryBytes(json: string): number {
  return Buffer.byteLength(json, 'utf8') + ENTRY_BYTES;
}
