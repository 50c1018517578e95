import test from 'ava';
import type { Redis } from 'ioredis';
import { buildAdminApp, ensureAdminResource } from '../../../src/authorization-server/admin-api/app.ts';
import { createLogger } from '../../../src/shared/logger.ts';
import {
  bearer,
  type ClientCredentials,
  call,
  clientCredentialsToken,
  type Served,
  serve,
} from '../../integration/support/harness.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../../support/redis.ts';

const prefix = testPrefix('admin-audit');
const audience = 'https://admin.audit.test';
let redis: Redis;
let as: RunningAuthServer;
let admin: Served;
const clients: Record<'auditor' | 'keeper', ClientCredentials> = {} as never;

test.before(async () => {
  redis = await connectRedis();
  as = await startAuthServer({ prefix, secrets: testSecrets(), env: { TOKEN_RATE_LIMIT: '0' } });
  await ensureAdminResource(as.store, audience);
  for (const [name, scope] of [
    ['auditor', 'admin:audit'],
    ['keeper', 'admin:keys'],
  ] as const) {
    const created = await as.store.clients.add({
      id: name,
      grants: ['client_credentials'],
      scope: [scope],
      resources: [audience],
      redirectUris: [],
      postLogoutRedirectUris: [],
    });
    clients[name] = { id: name, secret: String(created.client_secret) };
  }
  admin = await serve(
    buildAdminApp({
      config: as.config,
      store: as.store,
      host: as.host,
      logger: createLogger('test', 'silent'),
      audience,
    }),
  );
});
test.after.always(async () => {
  await admin?.close();
  await as?.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

const token = (who: 'auditor' | 'keeper') =>
  clientCredentialsToken(as.issuer, clients[who], { resource: audience });

test.serial('admin:audit reads the trail and its verdict; other admin scopes may not', async (t) => {
  const keeper = await token('keeper');
  t.is((await call(`${admin.url}/keys`, { headers: bearer(keeper) })).status, 200);
  const refused = await call(`${admin.url}/audit`, { headers: bearer(keeper) });
  t.is(refused.status, 403);
  t.regex(refused.headers.get('www-authenticate') ?? '', /insufficient_scope.*admin:audit/);

  const auditor = await token('auditor');
  const listed = await call(`${admin.url}/audit?limit=2`, { headers: bearer(auditor) });
  t.is(listed.status, 200);
  const entries = listed.json.entries as { action: string; outcome: string; actor: string }[];
  t.is(entries.length, 2);
  t.like(entries[0], { action: 'audit.list', outcome: 'refused' });
  t.like(entries[1], { action: 'keys.list', outcome: 'ok', actor: 'keeper via keeper' });

  const verdict = await call(`${admin.url}/audit/verify`, { headers: bearer(auditor) });
  t.deepEqual(verdict.json, { ok: true, entries: 3 });
  for (const limit of ['0', '-1', 'abc', '10001', '1e3']) {
    const bad = await call(`${admin.url}/audit?limit=${limit}`, { headers: bearer(auditor) });
    t.is(bad.status, 400, limit);
    t.is(bad.json.error, 'invalid_input');
  }
  t.is((await call(`${admin.url}/audit`)).status, 401);
});
