/**
 * The one base of every error we raise on purpose, on every surface (admin API and CLI, pages, the
 * resource server, the bearer middleware, the store): a stable `code` callers can switch on, the
 * HTTP `status`, and whether the message may be shown (`expose`). Each wire format has one
 * formatter: OAuth JSON (json-error.ts), RFC 6750 (bearer-error.ts) and the HTML
 * page (authorization-server/interactions/page-errors.ts).
 */
export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly expose: boolean;

  constructor(code: string, message: string, status = 500, expose = status < 500, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.expose = expose;
  }
}

/** Invalid or unsafe configuration; the message (and `variable`, when known) names the variable. */
export class ConfigError extends AppError {
  readonly variable: string | undefined;

  constructor(message: string, variable = /^([A-Z][A-Z0-9_]*):/.exec(message)?.[1]) {
    super('config_invalid', message, 500, false);
    this.variable = variable;
  }
}

/** An admin command or API call with bad arguments. */
export class InvalidInputError extends AppError {
  constructor(message: string) {
    super('invalid_input', message, 400);
  }
}

/** Authenticated and allowed on the route, but not to do this particular thing. */
export class ForbiddenError extends AppError {
  constructor(message: string) {
    super('forbidden', message, 403);
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super('not_found', message, 404);
  }
}

export class ConflictError extends AppError {
  constructor(message: string) {
    super('conflict', message, 409);
  }
}

/**
 * The store (Redis) cannot be reached or failed a command: the request may succeed on retry, so
 * every surface answers 503 with `Retry-After`, never a 500.
 */
export class StoreUnavailableError extends AppError {
  /** Seconds a client should wait before retrying. */
  static readonly RETRY_AFTER_SECONDS = 2;
  static readonly DESCRIPTION = 'the service is temporarily unavailable, try again shortly';
  // oidc-provider renders the errors it catches itself, from `statusCode`, `message` (as the
  // error code) and `error_description` (its helpers/err_out.js; test/contract pins it), so this
  // error reads as a 503 temporarily_unavailable there too.
  readonly statusCode = 503;
  readonly error_description = StoreUnavailableError.DESCRIPTION;

  constructor(cause?: unknown) {
    super(
      'temporarily_unavailable',
      'temporarily_unavailable',
      503,
      true,
      cause === undefined ? undefined : { cause },
    );
  }
}

/** Stored ciphertext that fails authentication: tampered data or the wrong store key. */
export class DecryptionError extends AppError {
  constructor() {
    super(
      'decryption_failed',
      'stored data could not be decrypted (wrong STORE_KEY or tampered data)',
      500,
      false,
    );
  }
}
