import { z } from 'zod';
import { AuthorizationServerUnavailable } from './errors.ts';
import type { AuthLogger } from './logger.ts';

/** The part of the authorization server's metadata this module relies on. */
export interface AuthorizationServerMetadata {
  readonly issuer: string;
  readonly jwksUri: URL;
  readonly introspectionEndpoint?: URL;
  readonly signingAlgorithms: readonly string[];
}

const discoveryDocument = z.object({
  issuer: z.string(),
  jwks_uri: z.url({ protocol: /^https?$/ }),
  introspection_endpoint: z.url({ protocol: /^https?$/ }).optional(),
});

/**
 * Asymmetric JWS algorithms only (RFC 8725 §3.1): never `none`, never HS* (a verifier holding public keys
 * must not accept MACs keyed with them).
 */
const ASYMMETRIC_ALGORITHMS: ReadonlySet<string> = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);

export function asymmetricOnly(algorithms: readonly string[]): string[] {
  return algorithms.filter((alg) => ASYMMETRIC_ALGORITHMS.has(alg));
}

export interface DiscoveryOptions {
  readonly issuer: string;
  readonly fetch: typeof fetch;
  readonly timeoutMs: number;
  /** After a failed attempt, requests are answered 503 without a new attempt for this long. */
  readonly retryAfterMs: number;
  readonly algorithms?: readonly string[];
  readonly logger: AuthLogger;
}

export function discoveryUrl(issuer: string): URL {
  return new URL(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`);
}

async function fetchMetadata(options: DiscoveryOptions): Promise<AuthorizationServerMetadata> {
  const response = await options.fetch(discoveryUrl(options.issuer), {
    headers: { accept: 'application/json' },
    redirect: 'error',
    signal: AbortSignal.timeout(options.timeoutMs),
  });
  if (response.status !== 200) throw new Error(`discovery answered HTTP ${response.status}`);
  const document = discoveryDocument.parse(await response.json());
  // OpenID Connect Discovery 1.0 §4.3: the issuer in the document must be exactly the one we asked.
  if (document.issuer !== options.issuer) {
    throw new Error(`discovery issuer ${document.issuer} is not the configured issuer ${options.issuer}`);
  }
  // Discovery lists no access-token algorithms (id_token_signing_alg_values_supported is about ID
  // tokens, RS256 only here, while each API may name its own). Unless restricted, every asymmetric
  // algorithm is accepted: the JWKS key a token names must carry that very `alg` and key type.
  let signingAlgorithms = asymmetricOnly(options.algorithms ?? []);
  if (signingAlgorithms.length === 0) {
    signingAlgorithms = [...ASYMMETRIC_ALGORITHMS];
  }
  return {
    issuer: document.issuer,
    jwksUri: new URL(document.jwks_uri),
    introspectionEndpoint: document.introspection_endpoint
      ? new URL(document.introspection_endpoint)
      : undefined,
    signingAlgorithms,
  };
}

/**
 * Loads the metadata lazily, on the first request that needs it, so this server starts (and stays up)
 * while the authorization server is down. A success is kept; a failure is forgotten after `retryAfterMs`
 * and the next request tries again. Concurrent requests share one fetch.
 */
export function createDiscoveryLoader(options: DiscoveryOptions): () => Promise<AuthorizationServerMetadata> {
  let pending: Promise<AuthorizationServerMetadata> | undefined;
  let failedAt = Number.NEGATIVE_INFINITY;

  return function loadMetadata() {
    if (pending) return pending;
    if (Date.now() - failedAt < options.retryAfterMs) {
      return Promise.reject(
        new AuthorizationServerUnavailable('authorization server unavailable, retry later'),
      );
    }
    pending = fetchMetadata(options).catch((cause: unknown) => {
      pending = undefined;
      failedAt = Date.now();
      options.logger.warn(
        { err: cause instanceof Error ? cause.message : String(cause), issuer: options.issuer },
        'authorization server discovery failed',
      );
      throw new AuthorizationServerUnavailable('authorization server unavailable, retry later', { cause });
    });
    return pending;
  };
}
