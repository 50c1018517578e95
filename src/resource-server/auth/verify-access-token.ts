import type { JWTPayload } from 'jose';
import type { AuthorizationServerMetadata } from './discovery.ts';
import { InvalidToken } from './errors.ts';
import { RemoteKeySet, type VerificationKey } from './jwks-cache.ts';
import { isSupportedAlgorithm, keyFitsAlgorithm, verifySignature } from './jws-verify.ts';
import { VerifiedTokenCache } from './verified-token-cache.ts';

/** The verified access token, as routes see it on `ctx.state.auth`. */
export interface AccessTokenAuth {
  /** `sub`: the end user, or the client itself for client credentials tokens. */
  readonly subject: string;
  readonly clientId: string;
  readonly scopes: ReadonlySet<string>;
  /** True when the token was issued to an end user, i.e. `sub !== client_id`. */
  readonly endUser: boolean;
  readonly jti: string;
  readonly claims: Readonly<JWTPayload>;
}

export interface VerifierOptions {
  readonly audience: string;
  readonly clockToleranceSeconds: number;
  readonly jwksCooldownSeconds: number;
  /** The longest the JWKS is used; its response's Cache-Control max-age makes it shorter. */
  readonly jwksCacheMaxAgeSeconds: number;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  /** Verified tokens kept for repeat callers (0: none). */
  readonly tokenCacheSize: number;
}

/** The protected header as far as this module reads it. */
export interface ProtectedHeader {
  readonly alg?: unknown;
  readonly typ?: unknown;
  readonly kid?: unknown;
  readonly [parameter: string]: unknown;
}

// RFC 9068 §4: the typ header tells access tokens apart from ID tokens and other JWTs.
const ACCESS_TOKEN_TYPES = new Set(['at+jwt', 'application/at+jwt']);

/**
 * Headers that would let the token choose its own verification key (RFC 8725 §3.10) or demand
 * extensions we do not implement (RFC 7515 §4.1.11). Keys come from the issuer's JWKS only.
 */
const REFUSED_HEADERS = ['jku', 'x5u', 'jwk', 'x5c', 'crit'] as const;

// RFC 9068 §2.2: the claims every JWT access token carries, besides `iss` and `aud`.
const REQUIRED_CLAIMS = ['sub', 'client_id', 'jti', 'exp', 'iat', 'scope'] as const;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeJsonObject(part: string): Record<string, unknown> | undefined {
  if (part === '' || !BASE64URL.test(part)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The protected header of a compact JWS; InvalidToken for anything that is not one. */
export function readHeader(token: string): ProtectedHeader {
  const parts = token.split('.');
  const header = parts.length === 3 ? decodeJsonObject(parts[0] as string) : undefined;
  if (header === undefined || !BASE64URL.test(parts[1] as string) || !BASE64URL.test(parts[2] as string)) {
    throw new InvalidToken('the access token is not a signed JWT');
  }
  return header;
}

function checkHeader(header: ProtectedHeader, algorithms: ReadonlySet<string>): string {
  for (const name of REFUSED_HEADERS) {
    if (Object.hasOwn(header, name)) throw new InvalidToken(`the ${name} header parameter is not accepted`);
  }
  if (typeof header.typ !== 'string' || !ACCESS_TOKEN_TYPES.has(header.typ.toLowerCase())) {
    throw new InvalidToken('the token is not a JWT access token (typ must be at+jwt)');
  }
  // The allow-list holds asymmetric algorithms only: `none` and HS* never get past here (RFC 8725 §3.1).
  if (typeof header.alg !== 'string' || !algorithms.has(header.alg)) {
    throw new InvalidToken('the token is signed with an algorithm this server does not accept');
  }
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    throw new InvalidToken('the access token has an invalid kid header parameter');
  }
  return header.alg;
}

/** RFC 7519 §4.1 and RFC 9068 §2.2, with `clockTolerance` leeway on every time comparison. */
function checkClaims(
  claims: Record<string, unknown>,
  expected: { issuer: string; audience: string },
  now: number,
  tolerance: number,
): void {
  if (claims.iss === undefined) throw new InvalidToken('the access token has no iss claim');
  if (claims.iss !== expected.issuer) throw new InvalidToken('the access token has an unexpected iss claim');
  if (claims.aud === undefined) throw new InvalidToken('the access token has no aud claim');
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(expected.audience)) {
    throw new InvalidToken('the access token has an unexpected aud claim');
  }
  for (const name of REQUIRED_CLAIMS) {
    if (claims[name] === undefined) throw new InvalidToken(`the access token has no ${name} claim`);
  }
  for (const name of ['sub', 'client_id', 'jti', 'scope']) {
    if (typeof claims[name] !== 'string' || (name !== 'scope' && claims[name] === '')) {
      throw new InvalidToken(`the access token has an invalid ${name} claim`);
    }
  }
  for (const name of ['exp', 'iat', 'nbf']) {
    if (claims[name] !== undefined && !Number.isFinite(claims[name])) {
      throw new InvalidToken(`the access token has an invalid ${name} claim`);
    }
  }
  if (now >= (claims.exp as number) + tolerance) throw new InvalidToken('the access token has expired');
  // A token from the future is as suspect as one not valid yet.
  if ((claims.iat as number) > now + tolerance) throw new InvalidToken('the access token is not valid yet');
  if (claims.nbf !== undefined && (claims.nbf as number) > now + tolerance) {
    throw new InvalidToken('the access token is not valid yet');
  }
}

export type AccessTokenVerifier = (
  token: string,
  options?: { readonly useCache?: boolean },
) => Promise<AccessTokenAuth>;

const candidatesFor = (keys: readonly VerificationKey[], alg: string, kid: string | undefined) =>
  keys.filter(
    (k) =>
      (kid === undefined || k.kid === kid) &&
      (k.alg === undefined || k.alg === alg) &&
      keyFitsAlgorithm(k.key, alg),
  );

/**
 * Builds the verifier for one discovered authorization server: its JWKS imported once into KeyObjects,
 * signatures checked synchronously with node:crypto, and repeat tokens answered from a bounded cache.
 */
export function createAccessTokenVerifier(
  metadata: AuthorizationServerMetadata,
  options: VerifierOptions,
): AccessTokenVerifier {
  const tolerance = options.clockToleranceSeconds;
  const algorithms = new Set(metadata.signingAlgorithms.filter(isSupportedAlgorithm));
  const expected = { issuer: metadata.issuer, audience: options.audience };
  const cache = new VerifiedTokenCache<AccessTokenAuth>(options.tokenCacheSize);
  const keySet = new RemoteKeySet({
    jwksUri: metadata.jwksUri,
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
    cooldownMs: options.jwksCooldownSeconds * 1000,
    maxAgeMs: options.jwksCacheMaxAgeSeconds * 1000,
    onRefresh: (kids) => cache.retainKids(kids),
  });

  async function keysFor(alg: string, kid: string | undefined): Promise<VerificationKey[]> {
    let candidates = candidatesFor(await keySet.usable(), alg, kid);
    // An unknown kid may be a key the AS just started using: fetch again, at most once per cooldown.
    if (candidates.length === 0 && (await keySet.refreshForUnknownKid())) {
      candidates = candidatesFor(await keySet.usable(), alg, kid);
    }
    if (candidates.length === 0) throw new InvalidToken('the access token was signed with an unknown key');
    return candidates;
  }

  return async function verifyAccessToken(token, { useCache = true } = {}) {
    const now = Math.floor(Date.now() / 1000);
    // The set's freshness is checked first, so a cached token whose key was just dropped is purged
    // by the refresh rather than served from the cache.
    if (useCache && keySet.current() !== undefined) {
      const cached = cache.get(token, now);
      if (cached !== undefined) return cached;
    }

    const header = readHeader(token);
    const alg = checkHeader(header, algorithms);
    const kid = header.kid as string | undefined;
    const [encodedHeader, encodedPayload, encodedSignature] = token.split('.') as [string, string, string];
    const signingInput = Buffer.from(`${encodedHeader}.${encodedPayload}`);
    const signature = Buffer.from(encodedSignature, 'base64url');
    const keys = await keysFor(alg, kid);
    const signer = keys.find((k) => verifySignature(alg, k.key, signingInput, signature));
    if (signer === undefined) throw new InvalidToken('the access token signature is invalid');

    const claims = decodeJsonObject(encodedPayload);
    if (claims === undefined) throw new InvalidToken('the access token claims are not a JSON object');
    checkClaims(claims, expected, Math.floor(Date.now() / 1000), tolerance);

    const subject = claims.sub as string;
    const clientId = claims.client_id as string;
    const auth: AccessTokenAuth = Object.freeze({
      subject,
      clientId,
      scopes: new Set((claims.scope as string).split(' ').filter(Boolean)),
      endUser: subject !== clientId,
      jti: claims.jti as string,
      claims: Object.freeze(claims) as Readonly<JWTPayload>,
    });
    if (useCache) cache.set(token, auth, signer.kid, (claims.exp as number) + tolerance);
    return auth;
  };
}
