import type { Middleware } from 'koa';
import type { Logger } from './logger.ts';

/**
 * One line per request: method, path, status and duration. The path only: a query string or a
 * header may carry what must never be logged (a misplaced token, a code, a password).
 */
export function logRequests(logger: Logger): Middleware {
  return async function logRequest(ctx, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      logger.info(
        {
          method: ctx.method,
          path: ctx.path,
          // The raw response's status: right also when oidc-provider answered the request itself.
          status: ctx.res.statusCode,
          duration_ms: Math.round(performance.now() - started),
        },
        'request',
      );
    }
  };
}
