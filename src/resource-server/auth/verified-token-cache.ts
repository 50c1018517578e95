/**
 * Tokens already verified, keyed by the token itself, so a client repeating its token costs a map
 * lookup instead of a signature check. Bounded (the oldest entry goes first); an entry is good only
 * until the token's own `exp` (with the same leeway as a full check) and is dropped as soon as its
 * signing key leaves the JWKS. Routes that check revocation never read it.
 */
export class VerifiedTokenCache<T> {
  readonly #maxEntries: number;
  readonly #entries = new Map<string, { value: T; kid: string | undefined; expiresAt: number }>();

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached result while the token has not expired (`expiresAt` in epoch seconds). */
  get(token: string, nowSeconds: number): T | undefined {
    const entry = this.#entries.get(token);
    if (entry === undefined) return undefined;
    if (nowSeconds >= entry.expiresAt) {
      this.#entries.delete(token);
      return undefined;
    }
    return entry.value;
  }

  set(token: string, value: T, kid: string | undefined, expiresAt: number): void {
    if (this.#maxEntries <= 0) return;
    this.#entries.delete(token);
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    this.#entries.set(token, { value, kid, expiresAt });
  }

  /** Drops every entry whose signing key is no longer published. */
  retainKids(published: ReadonlySet<string | undefined>): void {
    for (const [token, entry] of this.#entries) {
      if (!published.has(entry.kid)) this.#entries.delete(token);
    }
  }

  clear(): void {
    this.#entries.clear();
  }
}
