import { bodyParser } from '@koa/bodyparser';
import Router, { type RouterMiddleware } from '@koa/router';
import Koa, { type Middleware } from 'koa';
import type { ResourceServerConfig } from '../config/resource-server-config.ts';
import { respondWithJsonError } from '../shared/json-error.ts';
import type { Logger } from '../shared/logger.ts';
import { measureRequests } from '../shared/metrics-http.ts';
import { logRequests } from '../shared/request-log.ts';
import { ApiError, methodNotAllowed, notFound } from './api-errors.ts';
import { type BearerAuth, type BearerAuthOptions, createBearerAuth } from './auth/index.ts';
import { insuranceHandlers } from './insurance/handlers.ts';
import { createInMemoryInsuranceRepository } from './insurance/in-memory-repository.ts';
import type { InsuranceRepository } from './insurance/repository.ts';
import { assertEveryRouteHasPolicy, type RouteId, routeEntries, scopesSupported } from './scope-policy.ts';

export interface ResourceServerDeps {
  readonly config: ResourceServerConfig;
  readonly logger: Logger;
  /** Default: a fresh in-memory repository. */
  readonly repository?: InsuranceRepository;
  /** A ready bearer middleware; by default one is built from `config` and `bearerAuthOptions`. */
  readonly bearerAuth?: BearerAuth;
  /** Overrides for the bearer middleware built from `config` (e.g. `fetch`, `discoveryRetrySeconds`). */
  readonly bearerAuthOptions?: Partial<BearerAuthOptions>;
}

export const MAX_BODY_BYTES = 16 * 1024;
const RESOURCE_NAME = 'Insurance demo API';

/** The bearer middleware as configured from the environment (plus optional overrides). */
export function createBearerAuthFromConfig(
  deps: Pick<ResourceServerDeps, 'config' | 'logger' | 'bearerAuthOptions'>,
): BearerAuth {
  const { config } = deps;
  return createBearerAuth({
    issuer: config.issuer,
    audience: config.audience,
    clockToleranceSeconds: config.clockToleranceSeconds,
    jwksCooldownSeconds: config.jwksCooldownSeconds,
    jwksCacheMaxAgeSeconds: config.jwksCacheMaxAgeSeconds,
    introspection: config.introspection,
    logger: deps.logger.child({ component: 'bearer-auth' }),
    ...deps.bearerAuthOptions,
  });
}

const setSecurityHeaders: Middleware = async function setSecurityHeaders(ctx, next) {
  ctx.set({
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Resource-Policy': 'same-origin',
  });
  await next();
};

/**
 * An error from reading the body as the client's error. Messages may quote the input, so they are
 * replaced.
 */
function bodyError(error: unknown): ApiError {
  const { status } = (error ?? {}) as { status?: unknown };
  if (status === 413)
    return new ApiError(413, 'invalid_request', `the request body exceeds ${MAX_BODY_BYTES} bytes`);
  if (status === 415) return new ApiError(415, 'invalid_request', 'unsupported request body encoding');
  return new ApiError(400, 'invalid_request', 'the request body could not be parsed');
}

function clientError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  const { status } = (error ?? {}) as { status?: unknown };
  return typeof status === 'number' && status >= 400 && status < 500 ? bodyError(error) : undefined;
}

const handleErrors = (logger: Logger): Middleware =>
  async function handleErrors(ctx, next) {
    try {
      await next();
    } catch (error) {
      ctx.remove('Location');
      if (respondWithJsonError(ctx, clientError(error) ?? error)) {
        // Logged here and only here; the client learns nothing about the cause.
        logger.error({ err: error, method: ctx.method, path: ctx.path }, 'unexpected error');
      }
    }
  };

/** JSON for what the router answers on its own: unknown paths (404) and wrong methods (405). */
const answerUnrouted: Middleware = async function answerUnrouted(ctx, next) {
  await next();
  if (ctx.status === 501) {
    // A method no route implements: on a known path that is still "not allowed here", not a server error.
    if (!ctx.response.get('Allow')) throw notFound();
    ctx.status = 405;
  }
  if (ctx.status === 405 && ctx.body == null) throw methodNotAllowed();
  if (ctx.status === 404 && ctx.body == null) throw notFound();
};

function publicHandlers(deps: ResourceServerDeps) {
  const showHealth: RouterMiddleware = async function showHealth(ctx) {
    ctx.body = { status: 'ok' };
  };
  // RFC 9728 §2 and §3.2.
  const showProtectedResourceMetadata: RouterMiddleware = async function showProtectedResourceMetadata(ctx) {
    ctx.body = {
      resource: deps.config.audience,
      authorization_servers: [deps.config.issuer],
      scopes_supported: scopesSupported(),
      bearer_methods_supported: ['header'],
      resource_name: RESOURCE_NAME,
    };
  };
  return { health: [showHealth], protectedResourceMetadata: [showProtectedResourceMetadata] };
}

/**
 * The router, built from the scope table: each route gets the guards its entry asks for, then its
 * handler steps. Exported so tests can list what is registered.
 */
export function buildResourceServerRouter(deps: ResourceServerDeps, bearerAuth: BearerAuth): Router {
  const repository = deps.repository ?? createInMemoryInsuranceRepository();
  const handlers: Record<RouteId, RouterMiddleware[]> = {
    ...publicHandlers(deps),
    ...(insuranceHandlers(repository) as unknown as Record<RouteId, RouterMiddleware[]>),
  };
  const bodyParserStep = bodyParser({
    enableTypes: ['json', 'form'],
    jsonLimit: MAX_BODY_BYTES,
    formLimit: MAX_BODY_BYTES,
    jsonStrict: true,
  }) as unknown as (ctx: unknown, next: () => Promise<void>) => Promise<void>;
  // Whatever goes wrong while reading the body (bad JSON, a broken gzip stream, a wrong charset)
  // is the client's error: a 4xx, never a 500.
  const parseBody: RouterMiddleware = async function parseBody(ctx, next) {
    try {
      await bodyParserStep(ctx, async () => {});
    } catch (error) {
      throw bodyError(error);
    }
    await next();
  };
  // A form body is read before authentication, so that a token sent in it is seen and refused
  // (RFC 6750 §2.2); any other body only after it, so an anonymous caller learns nothing but 401.
  const parseFormBody: RouterMiddleware = async function parseFormBody(ctx, next) {
    return ctx.is('application/x-www-form-urlencoded') ? parseBody(ctx, next) : next();
  };

  const router = new Router();
  for (const [id, policy] of routeEntries()) {
    const guards: RouterMiddleware[] =
      policy.scope === null
        ? []
        : [
            parseFormBody,
            bearerAuth.protect({
              scope: policy.scope,
              endUser: policy.endUser,
              revocation: policy.revocationCheck,
            }) as unknown as RouterMiddleware,
            parseBody,
          ];
    router.register(policy.path, [policy.method], [...guards, ...handlers[id]]);
  }
  assertEveryRouteHasPolicy(router.stack);
  return router;
}

export function buildResourceServerApp(deps: ResourceServerDeps): Koa {
  const bearerAuth = deps.bearerAuth ?? createBearerAuthFromConfig(deps);
  const router = buildResourceServerRouter(deps, bearerAuth);

  const app = new Koa();
  app.on('error', (error: unknown) => deps.logger.error({ err: error }, 'unhandled koa error'));
  app.use(logRequests(deps.logger, { sampleEvery: deps.config.requestLogSampleEvery }));
  app.use(measureRequests('resource'));
  app.use(setSecurityHeaders);
  app.use(handleErrors(deps.logger));
  app.use(answerUnrouted);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
