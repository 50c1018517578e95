import type { IncomingMessage } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import { Readable } from 'node:stream';
import type { Context, Next } from 'koa';
import { BODY_LIMITS, type BodyLimits } from '../config/body-limits.ts';
import { AppError } from '../shared/errors.ts';

/**
 * The one request-body step of the public app. Every body is read here once, within the limit of
 * its endpoint (config/body-limits.ts); our own steps (the forms, the `/token` limiter) read the
 * bytes from here, and oidc-provider gets a replay of them: a fresh, unread stream carrying the
 * same request, which it parses with its own rules.
 *
 * An oversized body is refused with one 413 in the OAuth JSON format, by its Content-Length
 * before anything is read, or as soon as the limit is passed. Either way the rest is drained
 * (bounded) before answering, so the client reads the 413 rather than a reset connection.
 */
export class BodyTooLargeError extends AppError {
  constructor(limit: number) {
    super('invalid_request', `the request body is larger than ${limit} bytes`, 413, true);
  }
}

/** A body that stopped arriving (the client went away mid-request). */
class BodyIncompleteError extends AppError {
  constructor(cause: unknown) {
    super('invalid_request', 'the request body was not received completely', 400, true, { cause });
  }
}

interface ReadBody {
  raw: Buffer;
}

const bodies = new WeakMap<IncomingMessage, ReadBody>();

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Interaction forms get the small limit; every other endpoint is an OAuth one. */
function limitFor(path: string, limits: BodyLimits): number {
  return path.toLowerCase().startsWith('/interaction/') ? limits.form : limits.oauth;
}

export function readRequestBody(limits: BodyLimits = BODY_LIMITS) {
  return async function readBodyOnce(ctx: Context, next: Next): Promise<void> {
    if (!hasBody(ctx.req)) return next();
    const limit = limitFor(ctx.path, limits);
    const declared = ctx.request.length;
    const read = await collect(ctx.req, declared !== undefined && declared > limit ? -1 : limit, limits);
    if (read.raw === undefined) {
      // Drained to the end, the connection can serve the next request; cut short, it closes.
      if (!read.complete) ctx.set('Connection', 'close');
      throw new BodyTooLargeError(limit);
    }
    bodies.set(ctx.req, { raw: read.raw });
    await next();
  };
}

/**
 * Reads up to `limit` bytes (-1: keep nothing), then throws the rest away up to `limits.drain`
 * bytes or `limits.drainMs`. `raw` is set when the whole body fit; `complete` when the request
 * was read to its end.
 */
function collect(
  req: IncomingMessage,
  limit: number,
  limits: BodyLimits,
): Promise<{ raw?: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onError);
    };
    const cutShort = () => {
      stop();
      req.pause();
      resolve({ complete: false });
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      chunks.length = 0;
      timer ??= setTimeout(cutShort, limits.drainMs);
      if (size - Math.max(limit, 0) > limits.drain) cutShort();
    };
    const onEnd = () => {
      stop();
      resolve(size <= limit ? { raw: Buffer.concat(chunks, size), complete: true } : { complete: true });
    };
    const onError = (error: unknown) => {
      stop();
      reject(new BodyIncompleteError(error));
    };
    if (limit < 0) timer = setTimeout(cutShort, limits.drainMs);
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onError);
  });
}

/** The body read for this request; undefined when it came without one. */
export function requestBody(ctx: Pick<Context, 'req'>): Buffer | undefined {
  return bodies.get(ctx.req)?.raw;
}

/** The body as an urlencoded form (repeated fields as arrays); {} without a body. */
export function requestForm(ctx: Pick<Context, 'req'>): Record<string, string | string[]> {
  const raw = requestBody(ctx);
  return raw ? (parseQuery(raw.toString('utf8')) as Record<string, string | string[]>) : {};
}

/**
 * The request as oidc-provider should see it: the original when it had no body, otherwise an
 * unread stream of the body read here, with the same method, URL, headers and socket. Its body may
 * be replaced (replaceBody) until the provider starts reading it.
 */
export function replayRequest(ctx: Pick<Context, 'req'>): IncomingMessage {
  const { req } = ctx;
  const body = bodies.get(req);
  if (!body) return req;
  const replay = new Readable({
    read() {
      this.push(bodies.get(request)?.raw);
      this.push(null);
    },
  });
  const headers = { ...req.headers, 'content-length': String(body.raw.length) };
  delete headers['transfer-encoding'];
  Object.assign(replay, {
    method: req.method,
    url: req.url,
    headers,
    rawHeaders: req.rawHeaders,
    trailers: {},
    rawTrailers: [],
    httpVersion: req.httpVersion,
    httpVersionMajor: req.httpVersionMajor,
    httpVersionMinor: req.httpVersionMinor,
    socket: req.socket,
    connection: req.socket,
    complete: true,
    aborted: false,
  });
  const request = replay as unknown as IncomingMessage;
  bodies.set(request, { raw: body.raw });
  return request;
}

/** Replaces a replayed request's body before it is read (the JWT bridge's token swap). */
export function replaceBody(req: IncomingMessage, raw: Buffer): void {
  const body = bodies.get(req);
  if (!body) throw new Error('replaceBody: not a replayed request');
  body.raw = raw;
  req.headers['content-length'] = String(raw.length);
}
