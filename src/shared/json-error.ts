import type { Context } from 'koa';
import { AppError, StoreUnavailableError } from './errors.ts';

/** The JSON error body every JSON surface answers with (RFC 6749 §5.2's shape). */
export interface JsonErrorBody {
  error: string;
  error_description: string;
}

export interface JsonErrorAnswer {
  status: number;
  body: JsonErrorBody;
  /** Not raised on purpose: the caller logs it once, with its cause; the client learns nothing. */
  unexpected: boolean;
}

const UNAVAILABLE: JsonErrorBody = {
  error: 'temporarily_unavailable',
  error_description: StoreUnavailableError.DESCRIPTION,
};

/**
 * What a thrown error looks like on the wire in JSON. Our own errors say their code and message
 * when they may (`expose`); a Koa client error (`ctx.throw(4xx)`) is an invalid_request; a 503 is
 * temporarily_unavailable; anything else is a generic server_error.
 */
export function jsonErrorAnswer(error: unknown): JsonErrorAnswer {
  if (error instanceof StoreUnavailableError) return { status: 503, body: UNAVAILABLE, unexpected: false };
  if (error instanceof AppError && error.expose) {
    return {
      status: error.status,
      body: { error: error.code, error_description: error.message },
      unexpected: false,
    };
  }
  const { status, expose } = (error ?? {}) as { status?: unknown; expose?: unknown };
  if (status === 503) return { status: 503, body: UNAVAILABLE, unexpected: false };
  if (typeof status === 'number' && status >= 400 && status < 500 && expose !== false) {
    return {
      status,
      body: { error: 'invalid_request', error_description: (error as Error).message },
      unexpected: false,
    };
  }
  return {
    status: 500,
    body: { error: 'server_error', error_description: 'internal server error' },
    unexpected: true,
  };
}

/** Writes the JSON error answer; true when the error was unexpected (the caller logs it). */
export function respondWithJsonError(ctx: Context, error: unknown): boolean {
  const answer = jsonErrorAnswer(error);
  ctx.status = answer.status;
  ctx.set('Cache-Control', 'no-store');
  if (answer.status === 503) ctx.set('Retry-After', String(StoreUnavailableError.RETRY_AFTER_SECONDS));
  ctx.body = answer.body;
  return answer.unexpected;
}
