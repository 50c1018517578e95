import { NO_CREDENTIALS } from '../../shared/bearer-error.ts';
import { AppError } from '../../shared/errors.ts';

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

export abstract class BearerAuthError extends AppError {
  declare readonly code: BearerErrorCode | 'unauthorized';
  /** Whether the response carries a `WWW-Authenticate: Bearer` challenge. */
  readonly challenge: boolean = true;

  constructor(
    code: BearerErrorCode | 'unauthorized',
    status: number,
    description: string,
    options?: ErrorOptions,
  ) {
    super(code, description, status, true, options);
  }

  get description(): string {
    return this.message;
  }
}

/** RFC 6750 §3.1: a request without any authentication information gets a challenge without error code. */
export class MissingToken extends BearerAuthError {
  constructor(description: string, options?: ErrorOptions) {
    super(NO_CREDENTIALS, 401, description, options);
  }
}

/** RFC 6750 §3.1 invalid_request: malformed header, unsupported or more than one token transmission method. */
export class InvalidRequest extends BearerAuthError {
  constructor(description: string, options?: ErrorOptions) {
    super('invalid_request', 400, description, options);
  }
}

/** RFC 6750 §3.1 invalid_token: expired, revoked, malformed or otherwise invalid. */
export class InvalidToken extends BearerAuthError {
  constructor(description: string, options?: ErrorOptions) {
    super('invalid_token', 401, description, options);
  }
}

/** RFC 6750 §3.1 insufficient_scope: valid token, not enough scope; the challenge names the scope needed. */
export class InsufficientScope extends BearerAuthError {
  readonly scope: string;

  constructor(scope: string) {
    super('insufficient_scope', 403, `this request requires the scope ${scope}`);
    this.scope = scope;
  }
}

/** A valid token that carries no end user (client credentials) on a route over user-owned data. */
export class EndUserRequired extends BearerAuthError {
  override readonly challenge = false;

  constructor() {
    super(
      'access_denied',
      403,
      'this route needs a token issued to an end user; client credentials tokens are not accepted',
    );
  }
}

/**
 * The authorization server (discovery, JWKS or introspection) cannot be reached or answers nonsense: the
 * token can be neither accepted nor refused, so the client should retry rather than get a new token.
 */
export class AuthorizationServerUnavailable extends BearerAuthError {
  override readonly challenge = false;

  constructor(description: string, options?: ErrorOptions) {
    super('temporarily_unavailable', 503, description, options);
  }
}
