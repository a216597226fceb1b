// Idempotency keys. The engine deduplicates on (sender, cid) across every room of the sender, so a
// cid must never repeat for one user: 132 random bits make a collision less likely than one
// between two random UUIDs (122 bits).

import { randomBytes } from './platform.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A fresh cid: "c" and 22 random characters of 64 (132 random bits; 23 characters in all). */
export function newCid(): string {
  const b = randomBytes(22);
  let s = 'c';
  for (let i = 0; i < b.length; i++) s += ALPHABET.charAt(b[i] & 0x3f); // 256 is a multiple of 64: uniform
  return s;
}
