import type { Context } from 'koa';
import { InvalidRequest, InvalidToken, MissingToken } from './errors.ts';

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1).
const bearerCredentials = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
const bearerScheme = /^bearer(?: |$)/i;

/** Generous for a JWT access token; anything longer is not one of ours. */
const MAX_TOKEN_LENGTH = 8192;

function bodyCarriesToken(ctx: Context): boolean {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  return typeof body === 'object' && body !== null && Object.hasOwn(body, 'access_token');
}

/**
 * Takes the access token from the Authorization header, the only transmission method this server
 * supports. RFC 6750 §2.2 (form body) and §2.3 (URI query) put tokens where logs and caches keep them,
 * so a token found there is refused with invalid_request rather than silently ignored; so is using more
 * than one method (RFC 6750 §3.1). The body is inspected only when a body parser ran before this.
 */
export function extractBearerToken(ctx: Context): string {
  const header = ctx.get('Authorization');
  const inQuery = Object.hasOwn(ctx.query, 'access_token');
  const inBody = bodyCarriesToken(ctx);
  const isBearer = bearerScheme.test(header);

  if ((inQuery || inBody) && isBearer) {
    throw new InvalidRequest('the access token must be sent by exactly one method');
  }
  if (inQuery || inBody) {
    throw new InvalidRequest('send the access token in the Authorization header, not in the query or body');
  }
  // Another scheme (Basic...) is no bearer credential at all: challenge without an error code.
  if (!isBearer) throw new MissingToken('a bearer access token is required');

  // "Bearer" with nothing after it carries no token: the plain challenge, as for no header at all.
  if (/^bearer\s*$/i.test(header)) throw new MissingToken('a bearer access token is required');
  const match = bearerCredentials.exec(header.trim());
  // Something is there but it is not a b64token (or is far too long): a malformed token (SPEC: 401).
  if (match?.[1] === undefined) throw new InvalidToken('the access token is malformed');
  if (match[1].length > MAX_TOKEN_LENGTH) throw new InvalidToken('the access token is malformed');
  return match[1];
}
