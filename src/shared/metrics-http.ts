import type { ServerResponse } from 'node:http';
import Koa, { type Middleware } from 'koa';
import { collectProcessMetrics, httpRequestDuration, registry, scrape } from './metrics.ts';

/** The HTTP side of the metrics: request timing middleware and the `/metrics` endpoint. */

// Route names for requests that other Koa apps (oidc-provider's own) answered, keyed by the response:
// the one object both apps share (the provider may be handed a replay of the request).
const routeNames = new WeakMap<ServerResponse, string>();

/** Names the route of a request answered outside our router (oidc-provider's route names). */
export function nameRoute(res: ServerResponse, route: string): void {
  routeNames.set(res, route);
}

/**
 * Koa middleware timing every request. The route is a name given with nameRoute (oidc-provider's,
 * even where a router of ours ran first, as the /token limiter does), else the router's pattern
 * (`/policies/:id`); anything else is `unmatched`, never the raw path.
 */
export function measureRequests(server: string): Middleware {
  return async function measureRequest(ctx, next) {
    const stop = httpRequestDuration.startTimer();
    try {
      await next();
    } finally {
      const route =
        routeNames.get(ctx.res) ?? (ctx as { _matchedRoute?: unknown })._matchedRoute ?? 'unmatched';
      stop({
        server,
        method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].includes(ctx.method)
          ? ctx.method
          : 'OTHER',
        route: String(route),
        status: String(ctx.res.statusCode),
      });
    }
  };
}

/** `GET /metrics` in Prometheus text format, for an app on a non-public port. */
export function serveMetrics(): Middleware {
  collectProcessMetrics();
  return async function metricsEndpoint(ctx, next) {
    if (ctx.path !== '/metrics') return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      ctx.body = { error: 'method_not_allowed', error_description: 'GET /metrics' };
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = registry.contentType;
    ctx.body = await scrape();
  };
}

/** An app serving only `GET /metrics`, for a process whose own ports are public (the resource server). */
export function buildMetricsApp(): Koa {
  const app = new Koa();
  app.use(serveMetrics());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { error: 'not_found', error_description: 'only /metrics is served here' };
  });
  return app;
}
