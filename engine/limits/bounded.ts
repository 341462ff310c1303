/**
 * A map with a bound: past `max` entries it forgets the oldest. Every cache in the engine and
 * its workers (sessions, tokens, link maps, imported keys) is one of these, so none can grow
 * with what clients send.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(readonly max: number) {
    super();
  }

  override set(key: K, value: V): this {
    if (this.size >= this.max && !this.has(key)) this.delete(this.keys().next().value as K);
    return super.set(key, value);
  }

  /** The value for `key`, made by `make` (and kept) when absent. */
  getOrMake(key: K, make: () => V): V {
    let value = this.get(key);
    if (value === undefined) this.set(key, (value = make()));
    return value;
  }
}
