import type { IncomingMessage } from 'node:http';

/** oidc-provider's own limit for form bodies. */
export const FORM_BODY_LIMIT = 56 * 1024;

/** Reads a request body up to `limit` bytes; undefined when it is larger. */
export async function readRawBody(
  req: IncomingMessage,
  limit = FORM_BODY_LIMIT,
): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/**
 * Hands a body we had to read (to rate-limit by client, or to swap a JWT for its registry
 * reference) back to oidc-provider as if unread, so it parses it with its own rules and limits
 * instead of falling back to a pre-parsed body (which it warns about).
 */
export function replayRawBody(req: IncomingMessage, body: Buffer): void {
  Object.defineProperty(req, 'readable', { configurable: true, get: () => true });
  req.headers['content-length'] = String(body.length);
  delete req.headers['transfer-encoding'];
  req.iterator = async function* replay() {
    yield body;
  } as IncomingMessage['iterator'];
}

/** The 413 answer in the OAuth error format; the connection closes since the body was not read. */
export function bodyTooLarge(ctx: {
  status: number;
  body: unknown;
  set(field: string, value: string): void;
}): void {
  ctx.status = 413;
  ctx.set('Connection', 'close');
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: 'invalid_request', error_description: 'the request body is too large' };
}
