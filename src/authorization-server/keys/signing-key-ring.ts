import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { AppError } from '../../shared/errors.ts';

export type KeyStatus = 'next' | 'current' | 'retired';
/** The JWS algorithms tokens can be signed with; RS256 first, as RFC 9068 §2.1 requires it of every API. */
export const SIGNING_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  use: 'sig';
  status: KeyStatus;
  created_at: string;
  activated_at?: string;
  retired_at?: string;
  /** The private JWK; only ever stored sealed. */
  jwk: JWK;
}

export interface KeyRing {
  keys: SigningKey[];
}

/** A key as listed by `keys list` and the admin API: no key material. */
export type KeySummary = Omit<SigningKey, 'jwk'>;

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'] as const;

/**
 * How long a resource server may keep the JWKS before asking again (its Cache-Control max-age).
 * Short, so a key dropped by an emergency rotation (`keys rotate --now`) stops verifying at resource
 * servers that honour Cache-Control within seconds, not minutes; a JWKS fetch is cheap.
 */
export const JWKS_MAX_AGE_SECONDS = 5;

/**
 * How long a `next` key is published before it may sign: every instance has put it in its JWKS
 * (the change message is immediate; this leaves room for one that missed it) and every resource
 * server honouring JWKS_MAX_AGE_SECONDS has fetched it, so no token reaches an API that cannot
 * verify it. Only back-to-back rotations ever wait for it.
 */
export const NEXT_KEY_LEAD_MS = 2 * JWKS_MAX_AGE_SECONDS * 1000;

/** Milliseconds until every `next` key of these families has been published NEXT_KEY_LEAD_MS; 0 when it has. */
export function nextKeysReadyIn(ring: KeyRing, algs: readonly SigningAlg[], now: Date): number {
  const published = ring.keys
    .filter((k) => k.status === 'next' && algs.includes(k.alg))
    .map((k) => Date.parse(k.created_at));
  if (published.length === 0) return 0;
  return Math.max(0, Math.max(...published) + NEXT_KEY_LEAD_MS - now.getTime());
}

export async function generateSigningKey(alg: SigningAlg, status: KeyStatus, now: Date): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg.startsWith('RS') || alg.startsWith('PS') ? { modulusLength: 2048 } : {}),
  });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    use: 'sig',
    status,
    created_at: now.toISOString(),
    ...(status === 'current' ? { activated_at: now.toISOString() } : {}),
    jwk,
  };
}

/**
 * The algorithm families in use: RS256 for ID tokens (OIDC Core §15.1), which RS256 access tokens
 * share (`typ` tells them apart), the default access-token algorithm, and each API's own.
 */
export function families(defaultAccessTokenAlg: SigningAlg, resourceAlgs: SigningAlg[] = []): SigningAlg[] {
  return [...new Set<SigningAlg>(['RS256', defaultAccessTokenAlg, ...resourceAlgs])];
}

/** The families a ring holds keys of. */
export function familiesOf(ring: KeyRing): SigningAlg[] {
  return [...new Set(ring.keys.map((k) => k.alg))];
}

/** Adds what a family is missing (a current and a next key); used at first start and after alg changes. */
export async function completeRing(ring: KeyRing, algs: SigningAlg[], now: Date): Promise<KeyRing> {
  const keys = [...ring.keys];
  for (const alg of algs) {
    if (!keys.some((k) => k.alg === alg && k.status === 'current'))
      keys.push(await generateSigningKey(alg, 'current', now));
    if (!keys.some((k) => k.alg === alg && k.status === 'next'))
      keys.push(await generateSigningKey(alg, 'next', now));
  }
  return { keys };
}

/**
 * next → current, current → retired, and a new next, for every family. `emergency` (a leaked key)
 * drops the old current key at once instead of retiring it, so nothing signed by it verifies.
 */
export async function rotateRing(
  ring: KeyRing,
  algs: SigningAlg[],
  now: Date,
  emergency = false,
): Promise<KeyRing> {
  const at = now.toISOString();
  const keys: SigningKey[] = [];
  for (const key of ring.keys) {
    if (!algs.includes(key.alg)) {
      keys.push(key);
    } else if (key.status === 'current') {
      if (!emergency) keys.push({ ...key, status: 'retired', retired_at: at });
    } else if (key.status === 'next') {
      keys.push({ ...key, status: 'current', activated_at: at });
    } else {
      keys.push(key);
    }
  }
  for (const alg of algs) keys.push(await generateSigningKey(alg, 'next', now));
  return completeRing({ keys }, algs, now);
}

/** Takes a retired key out of the ring (and so out of the JWKS). */
export function retireKey(ring: KeyRing, kid: string): KeyRing {
  const key = ring.keys.find((k) => k.kid === kid);
  if (!key) throw new KeyRingError('not_found', `no key ${kid}`);
  if (key.status !== 'retired') {
    throw new KeyRingError(
      'refused',
      `key ${kid} is ${key.status}: only retired keys can be removed (rotate first)`,
    );
  }
  return { keys: ring.keys.filter((k) => k.kid !== kid) };
}

/** Drops retired keys once every token they could have signed has expired. */
export function pruneRing(ring: KeyRing, maxTokenLifetimeSeconds: number, now: Date): KeyRing {
  const cutoff = now.getTime() - maxTokenLifetimeSeconds * 1000;
  return {
    keys: ring.keys.filter(
      (k) => k.status !== 'retired' || !k.retired_at || Date.parse(k.retired_at) > cutoff,
    ),
  };
}

/** A key operation that cannot be done: an unknown kid (404) or a refused transition (409). */
export class KeyRingError extends AppError {
  constructor(code: 'not_found' | 'refused', message: string) {
    super(code === 'not_found' ? 'not_found' : 'conflict', message, code === 'not_found' ? 404 : 409);
  }
}

const ORDER: Record<KeyStatus, number> = { current: 0, next: 1, retired: 2 };

/**
 * The private JWKS handed to oidc-provider: current keys first, because the provider signs ID tokens
 * with the first key of the wanted algorithm; next and retired keys are only published.
 */
export function providerJwks(ring: KeyRing): { keys: JWK[] } {
  return { keys: [...ring.keys].sort((a, b) => ORDER[a.status] - ORDER[b.status]).map((k) => k.jwk) };
}

export function publicJwk(jwk: JWK): JWK {
  const copy: Record<string, unknown> = { ...jwk };
  for (const member of PRIVATE_MEMBERS) delete copy[member];
  return copy as JWK;
}

/** The kid that signs with `alg` now; undefined when the ring has no such family (yet). */
export function currentKid(ring: KeyRing, alg: SigningAlg): string | undefined {
  return ring.keys.find((k) => k.alg === alg && k.status === 'current')?.kid;
}

export function summarize(ring: KeyRing): KeySummary[] {
  return [...ring.keys]
    .sort((a, b) => a.alg.localeCompare(b.alg) || ORDER[a.status] - ORDER[b.status])
    .map(({ jwk: _jwk, ...summary }) => summary);
}
