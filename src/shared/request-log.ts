import type { Middleware } from 'koa';
import type { Logger } from './logger.ts';

export interface RequestLogOptions {
  /**
   * Log one successful (< 400) request in this many; errors and refusals (>= 400) are always logged.
   * Default 1: every request. The first request is always logged.
   */
  readonly sampleEvery?: number;
}

/**
 * One line per request: method, path, status and duration. The path only: a query string or a
 * header may carry what must never be logged (a misplaced token, a code, a password).
 */
export function logRequests(logger: Logger, { sampleEvery = 1 }: RequestLogOptions = {}): Middleware {
  // The line's fields are fixed and hold nothing secret, so it skips the redaction pass, which
  // would cost more than writing the line.
  const lines = logger.child({}, { redact: [] });
  let successes = 0;
  return async function logRequest(ctx, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      // The raw response's status: right also when oidc-provider answered the request itself.
      const status = ctx.res.statusCode;
      if (status >= 400 || sampleEvery <= 1 || successes++ % sampleEvery === 0) {
        lines.info(
          {
            method: ctx.method,
            path: ctx.path,
            status,
            duration_ms: Math.round(performance.now() - started),
            ...(status < 400 && sampleEvery > 1 ? { sampled: sampleEvery } : {}),
          },
          'request',
        );
      }
    }
  };
}
