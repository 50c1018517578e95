import Router from '@koa/router';
import Koa from 'koa';
import type { Config } from '../config/config.ts';
import { describe } from '../shared/describe-error.ts';
import { StoreUnavailableError } from '../shared/errors.ts';
import { respondWithJsonError } from '../shared/json-error.ts';
import type { Logger } from '../shared/logger.ts';
import { measureRequests } from '../shared/metrics-http.ts';
import { logRequests } from '../shared/request-log.ts';
import { strictTransportSecurity } from '../shared/strict-transport-security.ts';
import { baselineSecurityHeaders } from './interactions/security-headers.ts';
import type { ProviderHost } from './provider/provider-host.ts';
import { limitTokenRequests } from './rate-limit/token-rate-limit.ts';
import { readRequestBody, replayRequest } from './request-body.ts';
import type { Store } from './storage/store.ts';

export interface AppDeps {
  config: Config;
  store: Store;
  host: ProviderHost;
  logger: Logger;
  /** Routes of our own mounted before oidc-provider (interactions: login, consent). */
  routers?: Router[];
}

const READY_TIMEOUT_MS = 1500;

/**
 * The public app: our own routes, then oidc-provider for everything else. The provider is looked up
 * per request, so a key or resource change swaps it without dropping a request.
 */
export function buildApp({ config, store, host, logger, routers = [] }: AppDeps): Koa {
  const app = new Koa({ proxy: config.trustProxy, maxIpsCount: config.proxyHops });
  app.silent = true;
  app.on('error', (error) => logger.warn({ err: describe(error) }, 'request error'));
  const router = new Router();

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const checks = { store: false, keys: host.loaded };
    try {
      await Promise.race([
        store.kv.ping(),
        new Promise((_, reject) => setTimeout(reject, READY_TIMEOUT_MS).unref()),
      ]);
      checks.store = true;
    } catch {
      // reported below
    }
    const ready = checks.store && checks.keys;
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'unavailable', checks };
  });

  app.use(logRequests(logger));
  app.use(measureRequests('public'));
  if (new URL(config.issuer).protocol === 'https:') app.use(strictTransportSecurity());

  // Every URL the server builds (discovery, redirects, form actions) derives from the issuer, not
  // from whatever Host header a request carries: a forged Host cannot redirect anyone elsewhere.
  const issuerHost = new URL(config.issuer).host;
  app.use(async function pinHostToIssuer(ctx, next) {
    ctx.req.headers.host = issuerHost;
    delete ctx.req.headers['x-forwarded-host'];
    await next();
  });

  app.use(async function answerErrorsInJson(ctx, next) {
    try {
      await next();
    } catch (error) {
      if (respondWithJsonError(ctx, error)) logger.error({ err: describe(error) }, 'unhandled error');
    }
  });

  // Every response, the provider's included; our pages set a stricter policy of their own.
  app.use(baselineSecurityHeaders);
  // Every body, read once within its limit; our steps read it from here, the provider a replay.
  app.use(readRequestBody());
  if (config.tokenRateLimit > 0) app.use(tokenLimits(config, store, host).routes());
  app.use(router.routes()).use(router.allowedMethods());
  for (const extra of routers) app.use(extra.routes()).use(extra.allowedMethods());

  app.use(async (ctx) => {
    // With Redis away, answer at once rather than let every request wait for a command timeout.
    if (!store.kv.ready) throw new StoreUnavailableError();
    ctx.respond = false;
    await host.handler(replayRequest(ctx), ctx.res);
  });

  return app;
}

/** The `/token` budgets (rate-limit/token-rate-limit.ts), in front of the provider. */
function tokenLimits(config: Config, store: Store, host: ProviderHost): Router {
  const token = new Router();
  token.post(
    '/token',
    limitTokenRequests(store, config.tokenRateLimit, async (type, value) => {
      const { provider } = host;
      const model =
        type === 'refresh_token'
          ? await provider.RefreshToken.find(value)
          : await provider.AuthorizationCode.find(value);
      return model?.grantId;
    }),
  );
  return token;
}
