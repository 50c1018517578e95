/**
 * One error class per error code the bearer middleware answers with. Each carries its HTTP status and
 * knows whether it belongs in a `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
 */
export type BearerErrorCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'access_denied'
  | 'temporarily_unavailable';

export abstract class BearerAuthError extends Error {
  abstract readonly code: BearerErrorCode | undefined;
  abstract readonly status: number;
  /** Whether the response carries a `WWW-Authenticate: Bearer` challenge. */
  readonly challenge: boolean = true;
  readonly expose = true;
  readonly description: string;

  constructor(description: string, options?: ErrorOptions) {
    super(description, options);
    this.name = new.target.name;
    this.description = description;
  }
}

/** RFC 6750 §3.1: a request without any authentication information gets a challenge without error code. */
export class MissingToken extends BearerAuthError {
  readonly code = undefined;
  readonly status = 401;
}

/** RFC 6750 §3.1 invalid_request: malformed header, unsupported or more than one token transmission method. */
export class InvalidRequest extends BearerAuthError {
  readonly code = 'invalid_request';
  readonly status = 400;
}

/** RFC 6750 §3.1 invalid_token: expired, revoked, malformed or otherwise invalid. */
export class InvalidToken extends BearerAuthError {
  readonly code = 'invalid_token';
  readonly status = 401;
}

/** RFC 6750 §3.1 insufficient_scope: valid token, not enough scope; the challenge names the scope needed. */
export class InsufficientScope extends BearerAuthError {
  readonly code = 'insufficient_scope';
  readonly status = 403;
  readonly scope: string;

  constructor(scope: string) {
    super(`this request requires the scope ${scope}`);
    this.scope = scope;
  }
}

/** A valid token that carries no end user (client credentials) on a route over user-owned data. */
export class EndUserRequired extends BearerAuthError {
  readonly code = 'access_denied';
  readonly status = 403;
  override readonly challenge = false;

  constructor() {
    super('this route needs a token issued to an end user; client credentials tokens are not accepted');
  }
}

/**
 * The authorization server (discovery, JWKS or introspection) cannot be reached or answers nonsense: the
 * token can be neither accepted nor refused, so the client should retry rather than get a new token.
 */
export class AuthorizationServerUnavailable extends BearerAuthError {
  readonly code = 'temporarily_unavailable';
  readonly status = 503;
  override readonly challenge = false;
}
