import {
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
  type ProtectedHeaderParameters,
} from 'jose';
import type { AuthorizationServerMetadata } from './discovery.ts';
import { AuthorizationServerUnavailable, InvalidToken } from './errors.ts';

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
  readonly jwksCacheMaxAgeSeconds: number;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
}

// RFC 9068 §4: the typ header tells access tokens apart from ID tokens and other JWTs.
const ACCESS_TOKEN_TYPES = new Set(['at+jwt', 'application/at+jwt']);

/**
 * Headers that would let the token choose its own verification key (RFC 8725 §3.10) or demand
 * extensions we do not implement (RFC 7515 §4.1.11). Keys come from the issuer's JWKS only.
 */
const REFUSED_HEADERS = ['jku', 'x5u', 'jwk', 'x5c', 'crit'] as const;

// RFC 9068 §2.2: the claims every JWT access token carries (`aud` and `iss` are checked by jwtVerify).
const REQUIRED_CLAIMS = ['sub', 'client_id', 'jti', 'exp', 'iat', 'scope'];

/** JOSE errors that say the token is bad; any other error while resolving the key means the AS is. */
const TOKEN_KEY_ERRORS = new Set([
  errors.JWKSNoMatchingKey.code,
  errors.JWKSMultipleMatchingKeys.code,
  errors.JOSENotSupported.code,
  errors.JWKInvalid.code,
  errors.JOSEAlgNotAllowed.code,
]);

export function readHeader(token: string): ProtectedHeaderParameters {
  if (token.split('.').length !== 3) throw new InvalidToken('the access token is not a signed JWT');
  try {
    return decodeProtectedHeader(token);
  } catch {
    throw new InvalidToken('the access token is not a signed JWT');
  }
}

function checkHeader(header: ProtectedHeaderParameters, algorithms: readonly string[]): void {
  for (const name of REFUSED_HEADERS) {
    if (Object.hasOwn(header, name)) throw new InvalidToken(`the ${name} header parameter is not accepted`);
  }
  if (typeof header.typ !== 'string' || !ACCESS_TOKEN_TYPES.has(header.typ.toLowerCase())) {
    throw new InvalidToken('the token is not a JWT access token (typ must be at+jwt)');
  }
  if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
    throw new InvalidToken('the token is signed with an algorithm this server does not accept');
  }
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the access token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return `the access token has no ${error.claim} claim`;
    if (error.claim === 'nbf') return 'the access token is not valid yet';
    return `the access token has an unexpected ${error.claim} claim`;
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the access token signature is invalid';
  if (error instanceof errors.JWKSNoMatchingKey) return 'the access token was signed with an unknown key';
  return 'the access token is invalid';
}

function checkClaimTypes(claims: JWTPayload, now: number, toleranceSeconds: number): void {
  for (const name of ['sub', 'client_id', 'jti', 'scope']) {
    if (typeof claims[name] !== 'string' || (name !== 'scope' && claims[name] === '')) {
      throw new InvalidToken(`the access token has an invalid ${name} claim`);
    }
  }
  // jwtVerify only checks that iat is in the past when given maxTokenAge; a token from the future is
  // as suspect as one not valid yet.
  if (typeof claims.iat === 'number' && claims.iat > now + toleranceSeconds) {
    throw new InvalidToken('the access token is not valid yet');
  }
}

export type AccessTokenVerifier = (token: string) => Promise<AccessTokenAuth>;

/** Builds the verifier for one discovered authorization server, with its cached remote JWKS. */
export function createAccessTokenVerifier(
  metadata: AuthorizationServerMetadata,
  options: VerifierOptions,
): AccessTokenVerifier {
  const remoteKeys = createRemoteJWKSet(metadata.jwksUri, {
    cooldownDuration: options.jwksCooldownSeconds * 1000,
    cacheMaxAge: options.jwksCacheMaxAgeSeconds * 1000,
    timeoutDuration: options.timeoutMs,
    [customFetch]: options.fetch,
  });
  const getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remoteKeys(header, token);
    } catch (cause) {
      if (cause instanceof errors.JOSEError && TOKEN_KEY_ERRORS.has(cause.code)) throw cause;
      throw new AuthorizationServerUnavailable('the authorization server key set is unavailable', { cause });
    }
  };

  return async function verifyAccessToken(token) {
    const header = readHeader(token);
    checkHeader(header, metadata.signingAlgorithms);

    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, getKey, {
        issuer: metadata.issuer,
        audience: options.audience,
        algorithms: [...metadata.signingAlgorithms],
        typ: 'at+jwt',
        clockTolerance: options.clockToleranceSeconds,
        requiredClaims: REQUIRED_CLAIMS,
      }));
    } catch (error) {
      if (error instanceof AuthorizationServerUnavailable) throw error;
      throw new InvalidToken(describe(error), { cause: error });
    }
    checkClaimTypes(claims, Math.floor(Date.now() / 1000), options.clockToleranceSeconds);

    const subject = claims.sub as string;
    const clientId = claims.client_id as string;
    return {
      subject,
      clientId,
      scopes: new Set((claims.scope as string).split(' ').filter(Boolean)),
      endUser: subject !== clientId,
      jti: claims.jti as string,
      claims: Object.freeze(claims),
    };
  };
}
