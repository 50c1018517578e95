/**
 * The catalogue of our own errors. Each has a stable `code` callers can switch on; OAuth endpoints
 * speak oidc-provider's RFC 6749 errors instead.
 */
export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly expose: boolean;

  constructor(code: string, message: string, status = 500, expose = status < 500) {
    super(message);
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

/** The store (Redis) cannot be reached or answered an error. */
export class StoreUnavailableError extends AppError {
  constructor(message = 'the store is unavailable') {
    super('store_unavailable', message, 503);
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
