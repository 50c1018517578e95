import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { AuthorizationServerUnavailable } from './errors.ts';

/** One published verification key, imported once into a node:crypto KeyObject. */
export interface VerificationKey {
  readonly kid: string | undefined;
  /** The JWK's `alg`, when it names one: the key may then only verify that algorithm. */
  readonly alg: string | undefined;
  readonly key: KeyObject;
}

export interface KeySetOptions {
  readonly jwksUri: URL;
  readonly fetch: typeof fetch;
  readonly timeoutMs: number;
  /** Least time between two fetches caused by an unknown `kid`. */
  readonly cooldownMs: number;
  /**
   * The longest a fetched key set is used. The JWKS response's `Cache-Control: max-age` shortens it
   * (the authorization server sends a few seconds); past max-age the set is refreshed in the
   * background while still used, up to this bound, after which requests wait for a fetch.
   */
  readonly maxAgeMs: number;
  /** Called after every successful fetch with the kids now published, e.g. to drop cached tokens. */
  readonly onRefresh?: (kids: ReadonlySet<string | undefined>) => void;
}

/** Refuse to refetch more often than this, whatever max-age says (max-age=0 must not mean every request). */
const MIN_MAX_AGE_MS = 1000;

function maxAgeOf(response: Response): number | undefined {
  const header = response.headers.get('cache-control');
  if (!header) return undefined;
  if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)/i.test(header)) return 0;
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(header);
  return match ? Number(match[1]) * 1000 : undefined;
}

function importKeys(body: unknown): VerificationKey[] {
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error('the JWKS has no keys array');
  const imported: VerificationKey[] = [];
  for (const jwk of keys as Record<string, unknown>[]) {
    if (typeof jwk !== 'object' || jwk === null) continue;
    // RFC 7517 §4.2/4.3: keys for encryption only are not verification keys.
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) continue;
    if (!['RSA', 'EC', 'OKP'].includes(String(jwk.kty))) continue;
    try {
      const { d: _private, ...publicJwk } = jwk;
      imported.push({
        kid: typeof jwk.kid === 'string' ? jwk.kid : undefined,
        alg: typeof jwk.alg === 'string' ? jwk.alg : undefined,
        key: createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' }),
      });
    } catch {
      // A key this runtime cannot import verifies nothing; the others still do.
    }
  }
  return imported;
}

/**
 * The authorization server's JWKS, imported once per fetch into KeyObjects so that verification is a
 * synchronous node:crypto call. Refreshed when the response's max-age passes (so a key the AS drops
 * stops verifying within seconds), and on an unknown `kid` at most once per cooldown. Concurrent
 * callers share one fetch.
 */
export class RemoteKeySet {
  readonly #options: KeySetOptions;
  #keys: readonly VerificationKey[] = [];
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #freshUntil = Number.NEGATIVE_INFINITY;
  #pending: Promise<void> | undefined;

  constructor(options: KeySetOptions) {
    this.#options = options;
  }

  /**
   * The keys to verify with now, without waiting, or undefined when a fetch must be awaited first (no
   * keys yet, or the set is older than the longest allowed age). Past max-age a background refresh is
   * started and the current set is still used meanwhile.
   */
  current(now = Date.now()): readonly VerificationKey[] | undefined {
    if (now < this.#freshUntil) return this.#keys;
    if (now < this.#fetchedAt + this.#options.maxAgeMs) {
      this.refresh().catch(() => {});
      return this.#keys;
    }
    return undefined;
  }

  /** Keys after waiting for a fetch if one is needed; throws AuthorizationServerUnavailable when it fails. */
  async usable(): Promise<readonly VerificationKey[]> {
    const keys = this.current();
    if (keys) return keys;
    await this.refresh();
    return this.#keys;
  }

  /** Fetches again for an unknown kid, unless the last fetch is more recent than the cooldown: true when it did. */
  async refreshForUnknownKid(): Promise<boolean> {
    if (Date.now() - this.#fetchedAt < this.#options.cooldownMs && this.#pending === undefined) return false;
    await this.refresh();
    return true;
  }

  refresh(): Promise<void> {
    this.#pending ??= this.#fetch().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #fetch(): Promise<void> {
    const { jwksUri, fetch, timeoutMs, maxAgeMs } = this.#options;
    let keys: VerificationKey[];
    let maxAge: number | undefined;
    try {
      const response = await fetch(jwksUri, {
        headers: { accept: 'application/json, application/jwk-set+json' },
        redirect: 'error',
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status !== 200) throw new Error(`the JWKS endpoint answered HTTP ${response.status}`);
      maxAge = maxAgeOf(response);
      keys = importKeys(await response.json());
    } catch (cause) {
      throw new AuthorizationServerUnavailable('the authorization server key set is unavailable', { cause });
    }
    const now = Date.now();
    this.#keys = keys;
    this.#fetchedAt = now;
    this.#freshUntil = now + Math.min(maxAgeMs, Math.max(MIN_MAX_AGE_MS, maxAge ?? maxAgeMs));
    this.#options.onRefresh?.(new Set(keys.map((k) => k.kid)));
  }
}
