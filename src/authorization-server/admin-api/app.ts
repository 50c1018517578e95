import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import { z } from 'zod';
import type { Config } from '../../config/config.ts';
import { describe } from '../../shared/describe-error.ts';
import { AppError, ForbiddenError, InvalidInputError } from '../../shared/errors.ts';
import { respondWithJsonError } from '../../shared/json-error.ts';
import type { Logger } from '../../shared/logger.ts';
import { measureRequests, serveMetrics } from '../../shared/metrics-http.ts';
import { logRequests } from '../../shared/request-log.ts';
import { summarize } from '../keys/signing-key-ring.ts';
import type { ProviderHost } from '../provider/provider-host.ts';
import { removePasskeysByEmail } from '../second-factor/passkey-factor.ts';
import { TotpFactor } from '../second-factor/totp-factor.ts';
import { parseAuditLimit } from '../storage/audit-log.ts';
import { AUTH_METHODS, GRANTS, registeredScopes } from '../storage/client-store.ts';
import type { Store } from '../storage/store.ts';
import {
  ADMIN_SCOPES,
  type AdminCaller,
  type AdminScope,
  adminAuthentication,
  requireScope,
} from './admin-auth.ts';

export interface AdminAppDeps {
  config: Config;
  store: Store;
  host: ProviderHost;
  logger: Logger;
  /** The resource indicator (aud) of admin tokens. */
  audience: string;
}

const clientBody = z
  .object({
    client_id: z.string(),
    grant_types: z.array(z.enum(GRANTS)),
    scope: z.string(),
    resources: z.array(z.string()).default([]),
    redirect_uris: z.array(z.string()).default([]),
    post_logout_redirect_uris: z.array(z.string()).default([]),
    token_endpoint_auth_method: z.enum(AUTH_METHODS).optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional(),
    first_party: z.boolean().optional(),
    require_mfa: z.boolean().optional(),
  })
  .strict();
const resourceBody = z
  .object({
    uri: z.string(),
    scope: z.string(),
    token_ttl: z.number().int().optional(),
    alg: z.string().optional(),
  })
  .strict();
const userBody = z.object({ email: z.string(), name: z.string().optional(), password: z.string() }).strict();
const passwordBody = z.object({ password: z.string() }).strict();
const rotateBody = z.object({ now: z.boolean().optional() }).strict();

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body ?? {});
  if (!result.success)
    throw new InvalidInputError(
      result.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
    );
  return result.data;
}

const scopes = (value: string) => [...new Set(value.split(/\s+/).filter(Boolean))];

/**
 * The admin API: its own app on its own port (ADMIN_PORT), never on the public OAuth surface.
 * What the CLI offers, behind this server's own access tokens with one scope per area, and every
 * action in the audit log (who, what, when, from where).
 */
export function buildAdminApp({ config, store, host, logger, audience }: AdminAppDeps): Koa {
  const app = new Koa({ proxy: config.trustProxy, maxIpsCount: config.proxyHops });
  const router = new Router();

  /**
   * No escalation through admin:clients: a caller may only hand out, or take over (new secret),
   * admin scopes it holds itself, and the admin API's own resource is the server's to manage.
   */
  const mayDelegate = (ctx: Context, wanted: string[]) => {
    const caller = ctx.state.admin as AdminCaller;
    const beyond = wanted.filter(
      (s) => (ADMIN_SCOPES as readonly string[]).includes(s) && !caller.scopes.has(s),
    );
    if (beyond.length) throw new ForbiddenError(`only a holder of ${beyond.join(' ')} may grant it`);
  };
  const mayManageClient = async (ctx: Context, id: string) => {
    const client = await store.clients.current(id);
    if (client) mayDelegate(ctx, [...registeredScopes(client)]);
  };
  const refuseAdminResource = (uri: string) => {
    if (uri === audience) throw new ForbiddenError('the admin API resource is managed by the server itself');
  };

  /**
   * Checks the route's one scope, runs the action, and writes it to the audit log with its outcome;
   * a request refused for its scope is recorded too (who tried what).
   */
  const action = (
    scope: AdminScope,
    name: string,
    handler: (ctx: Context) => Promise<{ status?: number; body: unknown; target?: string }>,
  ) =>
    async function performAndAudit(ctx: Context, next: Next) {
      const caller = ctx.state.admin as AdminCaller;
      const entry = { actor: `${caller.sub} via ${caller.clientId}`, action: name, source: ctx.ip };
      const target = () =>
        ctx.params.id ?? ctx.params.kid ?? ctx.params.email ?? (ctx.query.uri as string | undefined);
      if (!caller.scopes.has(scope)) {
        await store.audit.record({ ...entry, target: target(), outcome: 'refused' });
        return requireScope(scope)(ctx, next);
      }
      try {
        const result = await handler(ctx);
        ctx.status = result.status ?? 200;
        ctx.body = result.body;
        await store.audit.record({ ...entry, target: result.target, outcome: 'ok' });
      } catch (error) {
        const refused = error instanceof AppError && error.status < 500;
        await store.audit.record({ ...entry, target: target(), outcome: refused ? 'refused' : 'failed' });
        throw error;
      }
    };

  router.get(
    '/keys',
    action('admin:keys', 'keys.list', async () => ({
      body: { keys: summarize((await store.keyRing.read()) ?? { keys: [] }) },
    })),
  );
  router.post(
    '/keys/rotate',
    action('admin:keys', 'keys.rotate', async (ctx) => {
      const { now } = parse(rotateBody, ctx.request.body);
      return {
        body: { keys: summarize(await store.keyRing.rotate(Boolean(now))) },
        target: now ? 'emergency' : undefined,
      };
    }),
  );
  router.post(
    '/keys/:kid/retire',
    action('admin:keys', 'keys.retire', async (ctx) => ({
      body: { keys: summarize(await store.keyRing.retire(String(ctx.params.kid))) },
      target: ctx.params.kid,
    })),
  );

  router.get(
    '/resources',
    action('admin:clients', 'resources.list', async () => ({
      body: { resources: await store.resources.list() },
    })),
  );
  router.post(
    '/resources',
    action('admin:clients', 'resources.add', async (ctx) => {
      const body = parse(resourceBody, ctx.request.body);
      refuseAdminResource(body.uri);
      const resource = await store.resources.add({
        uri: body.uri,
        scopes: scopes(body.scope),
        token_ttl: body.token_ttl,
        alg: body.alg,
      });
      return { status: 201, body: resource, target: resource.uri };
    }),
  );
  router.delete(
    '/resources',
    action('admin:clients', 'resources.remove', async (ctx) => {
      const uri = String(ctx.query.uri ?? '');
      refuseAdminResource(uri);
      await store.resources.remove(uri);
      return { body: { removed: uri }, target: uri };
    }),
  );

  router.get(
    '/clients',
    action('admin:clients', 'clients.list', async () => ({
      body: { clients: await store.clients.list() },
    })),
  );
  router.post(
    '/clients',
    action('admin:clients', 'clients.add', async (ctx) => {
      const body = parse(clientBody, ctx.request.body);
      mayDelegate(ctx, scopes(body.scope));
      const created = await store.clients.add({
        id: body.client_id,
        grants: body.grant_types,
        scope: scopes(body.scope),
        resources: body.resources,
        redirectUris: body.redirect_uris,
        postLogoutRedirectUris: body.post_logout_redirect_uris,
        authMethod: body.token_endpoint_auth_method,
        jwks: body.jwks,
        firstParty: body.first_party,
        requireMfa: body.require_mfa,
      });
      return { status: 201, body: created, target: created.client_id };
    }),
  );
  router.get(
    '/clients/:id',
    action('admin:clients', 'clients.show', async (ctx) => ({
      body: await store.clients.show(String(ctx.params.id)),
      target: ctx.params.id,
    })),
  );
  router.delete(
    '/clients/:id',
    action('admin:clients', 'clients.remove', async (ctx) => {
      await mayManageClient(ctx, String(ctx.params.id));
      await store.clients.remove(String(ctx.params.id));
      return { body: { removed: ctx.params.id }, target: ctx.params.id };
    }),
  );
  router.post(
    '/clients/:id/rotate-secret',
    action('admin:clients', 'clients.rotate-secret', async (ctx) => {
      await mayManageClient(ctx, String(ctx.params.id));
      return { body: await store.clients.rotateSecret(String(ctx.params.id)), target: ctx.params.id };
    }),
  );

  router.get(
    '/users',
    action('admin:users', 'users.list', async () => ({ body: { users: await store.users.list() } })),
  );
  router.post(
    '/users',
    action('admin:users', 'users.add', async (ctx) => {
      const body = parse(userBody, ctx.request.body);
      const user = await store.users.add(body);
      return { status: 201, body: { sub: user.sub, email: user.email }, target: user.sub };
    }),
  );
  router.delete(
    '/users/:email',
    action('admin:users', 'users.remove', async (ctx) => {
      await store.users.remove(String(ctx.params.email));
      return { body: { removed: ctx.params.email }, target: ctx.params.email };
    }),
  );
  router.put(
    '/users/:email/password',
    action('admin:users', 'users.set-password', async (ctx) => {
      const { password } = parse(passwordBody, ctx.request.body);
      const user = await store.users.setPassword(String(ctx.params.email), password);
      return { body: { sub: user.sub, email: user.email }, target: user.sub };
    }),
  );

  router.post(
    '/users/:email/totp',
    action('admin:users', 'users.totp-enroll', async (ctx) => {
      const enrolment = await new TotpFactor(store).enrolByEmail(String(ctx.params.email));
      return { status: 201, body: enrolment, target: ctx.params.email };
    }),
  );
  router.delete(
    '/users/:email/passkeys',
    action('admin:users', 'users.passkeys-remove', async (ctx) => {
      const removed = await removePasskeysByEmail(store, String(ctx.params.email));
      return { body: removed, target: removed.sub };
    }),
  );
  router.delete(
    '/users/:email/totp',
    action('admin:users', 'users.totp-remove', async (ctx) => {
      const user = await store.users.removeTotp(String(ctx.params.email));
      return { body: { sub: user.sub, email: user.email, totp: false }, target: user.sub };
    }),
  );
  router.get(
    '/audit',
    action('admin:audit', 'audit.list', async (ctx) => ({
      body: { entries: await store.audit.recent(parseAuditLimit(ctx.query.limit, 'limit')) },
    })),
  );
  router.get(
    '/audit/verify',
    action('admin:audit', 'audit.verify', async () => ({ body: await store.audit.verify() })),
  );

  app.use(logRequests(logger));
  app.use(measureRequests('admin'));
  app.use(async function handleErrors(ctx: Context, next: Next) {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('X-Content-Type-Options', 'nosniff');
    try {
      await next();
      if (ctx.status === 404 && !ctx.body)
        ctx.body = { error: 'not_found', error_description: 'no such route' };
      if (ctx.status === 405)
        ctx.body = { error: 'method_not_allowed', error_description: 'method not allowed on this route' };
    } catch (error) {
      if (respondWithJsonError(ctx, error)) logger.error({ err: describe(error) }, 'admin API error');
    }
  });
  app.use(async function health(ctx: Context, next: Next) {
    if (ctx.path === '/health' && ctx.method === 'GET') {
      ctx.body = { status: 'ok' };
      return;
    }
    await next();
  });
  // Prometheus scrapes without a token: the admin port is not public (loopback by default).
  app.use(serveMetrics());
  app.use(adminAuthentication(config, store, host, audience));
  app.use(bodyParser({ enableTypes: ['json'], jsonLimit: '32kb', encoding: 'utf-8' }));
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}

/** Makes sure the admin API exists as a resource, so admin clients can be registered for it. */
export async function ensureAdminResource(store: Store, audience: string): Promise<void> {
  const existing = await store.resources.current(audience);
  const missing = ADMIN_SCOPE_LIST.filter((s) => !existing?.scopes.includes(s));
  if (missing.length) {
    await store.resources.add({
      uri: audience,
      scopes: [...new Set([...(existing?.scopes ?? []), ...ADMIN_SCOPE_LIST])],
    });
  }
}

const ADMIN_SCOPE_LIST: string[] = [...ADMIN_SCOPES];
