// The sends handed to the actor and not yet settled, by token. Tokens are handed out in order and
// mostly settle in order, within a commit or two, so they live in a ring indexed by token: no hash
// table to grow, shrink and rehash as the number in flight rises and falls with every commit. A
// send still unsettled when its slot comes round again (one held up for a whole lap: a room's
// presence lookup, a store that stopped answering) moves to a map and is found there.

export class InFlight<T> {
  private readonly slots: (T | undefined)[];
  private readonly tokens: Float64Array;
  private readonly mask: number;
  /** Sends displaced from the ring by a newer token, by token. */
  private readonly late = new Map<number, T>();
  private count = 0;

  /** `bits`: the ring holds 2^bits sends. */
  constructor(bits = 16) {
    this.slots = new Array<T | undefined>(1 << bits).fill(undefined);
    this.tokens = new Float64Array(1 << bits);
    this.mask = (1 << bits) - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Add the send of `token` (tokens are positive and never reused). */
  set(token: number, v: T): void {
    const i = token & this.mask;
    const held = this.slots[i];
    if (held !== undefined) this.late.set(this.tokens[i], held);
    this.slots[i] = v;
    this.tokens[i] = token;
    this.count++;
  }

  get(token: number): T | undefined {
    const i = token & this.mask;
    if (this.tokens[i] === token) return this.slots[i];
    return this.late.size === 0 ? undefined : this.late.get(token);
  }

  /** Remove the send of `token`; false when it was not in flight. */
  delete(token: number): boolean {
    const i = token & this.mask;
    if (this.tokens[i] === token && this.slots[i] !== undefined) {
      this.slots[i] = undefined;
      this.tokens[i] = 0;
      this.count--;
      return true;
    }
    if (this.late.delete(token)) {
      this.count--;
      return true;
    }
    return false;
  }
}
