// A table by string key for entries that come and go once per message (the sends in flight, by
// their (sender, cid) key), kept where V8's garbage collector does not promote them.
//
// Not a Map: when a Map's hash table is rebuilt (it grows, or fills with deleted entries), V8
// links the old table to the new one (so live iterators can follow) and leaves the old one's
// entries in place. A long-lived Map whose entries churn rebuilds its small table every few
// messages, and after each full collection its table of the moment is in the old generation:
// from then on every table after it, and every entry they ever held, is reachable from an old
// object, which the scavenger treats as alive without checking. So each message's objects (the
// pending send, its message, its strings) were copied once and then promoted, until the next full
// collection. A dictionary-mode object rebuilds its table without such a link.
//
// Measured: a million sends through the group commit, 8 in flight at a time, the group commit in
// the old generation first (node --expose-gc --trace-gc-nvp --import tsx test/support/churn.ts
// actor): with a Map, 345 bytes per send survived a scavenge and 275 were promoted; with this
// table, 29 and 18 (test/key-table.solo.test.ts).

/** Keys: cidKeys (sender, NUL, cid), so never an array index, which an object would store apart. */
export class KeyTable<T> {
  private readonly entries = Object.create(null) as Record<string, T>;

  get(key: string): T | undefined {
    return this.entries[key];
  }

  set(key: string, value: T): void {
    this.entries[key] = value;
  }

  delete(key: string): void {
    delete this.entries[key];
  }
}
