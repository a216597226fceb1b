// Strings kept for a long time that may come from a decoded batch, copied so they hold nothing
// else alive.

/**
 * A flat copy of `s` that keeps no other string alive. A string decoded from a msgpackr batch (the
 * actor's commit results, another node's messages) can be a V8 slice of one string holding the
 * whole batch's text; kept in a hot window, such a slice would keep that whole string alive, memory
 * the window's byte budget does not count.
 */
export function detached(s: string): string {
  const n = s.length;
  // V8 copies a substring this short instead of slicing it.
  if (n < 13) return s;
  // A message id, on every commit: its own 13 characters.
  if (n === 13) {
    return String.fromCharCode(s.charCodeAt(0), s.charCodeAt(1), s.charCodeAt(2), s.charCodeAt(3), s.charCodeAt(4), s.charCodeAt(5), s.charCodeAt(6),
      s.charCodeAt(7), s.charCodeAt(8), s.charCodeAt(9), s.charCodeAt(10), s.charCodeAt(11), s.charCodeAt(12));
  }
  // Exact for any string (JSON.stringify escapes lone surrogates), and the parser builds a new flat one.
  return JSON.parse(JSON.stringify(s)) as string;
}
