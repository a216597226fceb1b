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
// Measured in isolation (node --expose-gc --trace-gc-nvp, 3 million entries of ~300 bytes, 8
// alive at a time, the table promoted first): a Map had 360 bytes per entry survive a scavenge
// and 329 promoted, scavenges 1,881 ms in all; this table 16 and 2, 225 ms (test/key-table.solo.test.ts).

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
