// Connection caps, checked before the upgrade: all connections together (CHAT_MAX_CONNS, then
// 503) and per client address (CHAT_MAX_CONNS_PER_IP, then 429). A slot is taken when the upgrade
// starts (so a flood of slow upgrades counts too) and given back when the upgrade fails or the
// connection closes.

export type CapRefusal = 'total' | 'address';

export class ConnectionCaps {
  private total = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(private readonly maxTotal: number, private readonly maxPerAddress: number) {}

  /** Take a slot for `address`, or say which cap refuses it. */
  take(address: string): CapRefusal | null {
    if (this.total >= this.maxTotal) return 'total';
    const n = this.byAddress.get(address) ?? 0;
    if (n >= this.maxPerAddress) return 'address';
    this.total++;
    this.byAddress.set(address, n + 1);
    return null;
  }

  give(address: string): void {
    const n = this.byAddress.get(address);
    if (n === undefined) return;
    this.total--;
    if (n <= 1) this.byAddress.delete(address);
    else this.byAddress.set(address, n - 1);
  }

  get open(): number {
    return this.total;
  }
}
