// Client addresses: the socket's peer as uWS reports it (IPv6 in full, IPv4 on a dual-stack
// socket as ::ffff:a.b.c.d), normalized; and behind a proxy, the client named by X-Forwarded-For,
// believed only when the request came from a proxy CHAT_TRUST_PROXY names.

import { isIP } from 'node:net';

export interface Cidr {
  v: 4 | 6;
  net: bigint;
  prefix: number;
}

function ipBits(ip: string): { v: 4 | 6; bits: bigint } | null {
  const kind = isIP(ip);
  if (kind === 4) {
    let n = 0n;
    for (const part of ip.split('.')) n = (n << 8n) | BigInt(Number(part));
    return { v: 4, bits: n };
  }
  if (kind !== 6) return null;
  const mapped = /^(?:0{1,4}:){0,5}:?(?:0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped !== null) return ipBits(mapped[1]);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, null];
  const h = head === '' ? [] : head.split(':');
  const t = tail === null || tail === '' ? [] : tail.split(':');
  const groups = tail === null ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(parseInt(g, 16));
  // A v4-mapped address written in hex groups (::ffff:7f00:1): the IPv4 address it maps.
  if (n >> 32n === 0xffffn) return { v: 4, bits: n & 0xffffffffn };
  return { v: 6, bits: n };
}

/** An address or a CIDR block (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`); null if it is neither. */
export function parseCidr(s: string): Cidr | null {
  const [addr, len] = s.split('/');
  const ip = ipBits(addr);
  if (ip === null) return null;
  const max = ip.v === 4 ? 32 : 128;
  const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : -1;
  if (prefix < 0 || prefix > max) return null;
  const shift = BigInt(max - prefix);
  return { v: ip.v, net: (ip.bits >> shift) << shift, prefix };
}

function contains(c: Cidr, ip: { v: 4 | 6; bits: bigint }): boolean {
  if (c.v !== ip.v) return false;
  const shift = BigInt((c.v === 4 ? 32 : 128) - c.prefix);
  return (ip.bits >> shift) << shift === c.net;
}

/** The canonical text of an address: dotted IPv4 (also for v4-mapped IPv6), else compressed-free lowercase IPv6. */
export function normalizeAddress(text: string): string {
  const ip = ipBits(text.trim());
  if (ip === null) return text.trim().toLowerCase();
  if (ip.v === 4) return [24n, 16n, 8n, 0n].map((s) => String((ip.bits >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let i = 7n; i >= 0n; i--) groups.push(((ip.bits >> (i * 16n)) & 0xffffn).toString(16));
  return groups.join(':');
}

/** Decides who the client is, given the proxies to believe. */
export class ClientAddress {
  private readonly trusted: Cidr[];

  constructor(trustProxy: string[]) {
    this.trusted = trustProxy.map((p) => parseCidr(p)!);
  }

  private isTrusted(addr: string): boolean {
    const ip = ipBits(addr);
    return ip !== null && this.trusted.some((c) => contains(c, ip));
  }

  /**
   * The client's address: the peer's, unless the peer is a trusted proxy and sent X-Forwarded-For;
   * then the rightmost address in it that is not itself a trusted proxy (the leftmost if all are).
   */
  of(remote: string, forwardedFor: string): string {
    const peer = normalizeAddress(remote);
    if (this.trusted.length === 0 || forwardedFor === '' || !this.isTrusted(peer)) return peer;
    const hops = forwardedFor.split(',').map((h) => h.trim()).filter((h) => isIP(h) !== 0);
    for (let i = hops.length - 1; i >= 0; i--) {
      if (!this.isTrusted(hops[i]) || i === 0) return normalizeAddress(hops[i]);
    }
    return peer;
  }
}
