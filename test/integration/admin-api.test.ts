import test from 'ava';
import type { Redis } from 'ioredis';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { buildAdminApp, ensureAdminResource } from '../../src/authorization-server/admin-api/app.ts';
import type { AuditEntry } from '../../src/authorization-server/storage/audit-log.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, dumpPrefix, testPrefix } from '../support/redis.ts';
import {
  bearer,
  type ClientCredentials,
  call,
  clientCredentialsToken,
  eventually,
  type JsonResponse,
  revoke,
  type Served,
  serve,
  silentLogger,
  userTokens,
} from './support/harness.ts';

const prefix = testPrefix('it-admin');
const secrets = testSecrets();
const audience = 'https://admin.integration.test';
const api = 'https://insurance-api.admin-it.test';

type Scope = 'admin:keys' | 'admin:clients' | 'admin:users';
const SCOPES: Scope[] = ['admin:keys', 'admin:clients', 'admin:users'];

let redis: Redis;
let as: RunningAuthServer;
let admin: Served;
const admins = {} as Record<Scope, ClientCredentials>;
let apiClient: ClientCredentials;
/** Every secret or password the test handled: none may reach the audit log. */
const secretsSeen = new Set<string>();

test.before(async () => {
  redis = await connectRedis();
  as = await startAuthServer({ prefix, secrets, env: { TOKEN_RATE_LIMIT: '0' } });
  await ensureAdminResource(as.store, audience);
  await as.store.resources.add({ uri: api, scopes: ['reports:read'] });
  for (const scope of SCOPES) {
    const id = `admin-${scope.split(':')[1]}`;
    const created = await as.store.clients.add({
      id,
      grants: ['client_credentials'],
      scope: [scope],
      resources: [audience],
      redirectUris: [],
      postLogoutRedirectUris: [],
    });
    admins[scope] = { id, secret: String(created.client_secret) };
    secretsSeen.add(String(created.client_secret));
  }
  const created = await as.store.clients.add({
    id: 'api-client',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  apiClient = { id: 'api-client', secret: String(created.client_secret) };
  admin = await serve(
    buildAdminApp({ config: as.config, store: as.store, host: as.host, logger: silentLogger, audience }),
  );
});

test.after.always(async () => {
  await Promise.allSettled([admin?.close(), as?.close()]);
  if (redis) {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  }
});

/** A fresh admin token from the real token endpoint, for the admin API audience. */
const tokenFor = (scope: Scope) =>
  clientCredentialsToken(as.issuer, admins[scope], { scope, resource: audience });

function request(method: string, path: string, token: string | undefined, body?: unknown, raw?: string) {
  const headers: Record<string, string> = token ? bearer(token) : {};
  if (body !== undefined || raw !== undefined) headers['content-type'] = 'application/json';
  return call(`${admin.url}${path}`, {
    method,
    headers,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
}

const challenge = (r: JsonResponse) => r.headers.get('www-authenticate') ?? '';

function assertJsonError(
  t: { is: (a: unknown, b: unknown, m?: string) => void },
  r: JsonResponse,
  what: string,
) {
  t.is(r.headers.get('content-type')?.split(';')[0], 'application/json', `${what}: JSON body`);
  t.is(typeof r.json.error, 'string', `${what}: error member`);
}

/** Every route of the admin API with the one scope it needs (each a harmless request). */
const ROUTES: { method: string; path: string; scope: Scope; body?: unknown }[] = [
  { method: 'GET', path: '/keys', scope: 'admin:keys' },
  { method: 'POST', path: '/keys/rotate', scope: 'admin:keys', body: {} },
  { method: 'POST', path: '/keys/no-such-kid/retire', scope: 'admin:keys' },
  { method: 'GET', path: '/resources', scope: 'admin:clients' },
  {
    method: 'POST',
    path: '/resources',
    scope: 'admin:clients',
    body: { uri: 'https://x.test', scope: 'x:y' },
  },
  { method: 'DELETE', path: '/resources?uri=https%3A%2F%2Fx.test', scope: 'admin:clients' },
  { method: 'GET', path: '/clients', scope: 'admin:clients' },
  { method: 'POST', path: '/clients', scope: 'admin:clients', body: {} },
  { method: 'GET', path: '/clients/api-client', scope: 'admin:clients' },
  { method: 'DELETE', path: '/clients/api-client', scope: 'admin:clients' },
  { method: 'POST', path: '/clients/api-client/rotate-secret', scope: 'admin:clients' },
  { method: 'GET', path: '/users', scope: 'admin:users' },
  { method: 'POST', path: '/users', scope: 'admin:users', body: {} },
  { method: 'DELETE', path: '/users/nobody%40x.test', scope: 'admin:users' },
  { method: 'PUT', path: '/users/nobody%40x.test/password', scope: 'admin:users', body: {} },
];

test.serial('no token: 401 with a Bearer challenge and no error code, on every route', async (t) => {
  for (const route of ROUTES) {
    const r = await request(route.method, route.path, undefined, route.body);
    t.is(r.status, 401, `${route.method} ${route.path}`);
    t.regex(challenge(r), /^Bearer /);
    t.false(challenge(r).includes('error='), `${route.method} ${route.path}: ${challenge(r)}`);
    assertJsonError(t, r, route.path);
  }
});

test.serial('a garbage or foreign-audience token: 401 invalid_token', async (t) => {
  const foreign = await clientCredentialsToken(as.issuer, apiClient, { scope: 'reports:read' });
  t.is(decodeJwt(foreign).aud, api);
  for (const [name, token] of Object.entries({
    garbage: 'garbage',
    'three garbage parts': 'a.b.c',
    'a real token for another audience': foreign,
  })) {
    const r = await request('GET', '/keys', token);
    t.is(r.status, 401, `${name}: ${r.text}`);
    t.is(r.json.error, 'invalid_token', name);
    t.true(challenge(r).includes('error="invalid_token"'), name);
  }
});

test.serial('wrong scope: 403 insufficient_scope naming the needed scope, and nothing changes', async (t) => {
  const tokens = Object.fromEntries(
    await Promise.all(SCOPES.map(async (s) => [s, await tokenFor(s)])),
  ) as Record<Scope, string>;
  const keysBefore = JSON.stringify(await as.store.keyRing.read());
  for (const route of ROUTES) {
    for (const scope of SCOPES.filter((s) => s !== route.scope)) {
      const r = await request(route.method, route.path, tokens[scope], route.body);
      const what = `${route.method} ${route.path} with ${scope}`;
      t.is(r.status, 403, `${what}: ${r.text}`);
      t.is(r.json.error, 'insufficient_scope', what);
      t.true(challenge(r).includes('error="insufficient_scope"'), what);
      t.true(challenge(r).includes(`scope="${route.scope}"`), `${what}: ${challenge(r)}`);
    }
  }
  t.is(JSON.stringify(await as.store.keyRing.read()), keysBefore);
  t.truthy(await as.store.clients.get('api-client'));
});

test.serial('admin:keys alone: list, rotate, retire (and retiring the current key is refused)', async (t) => {
  const token = await tokenFor('admin:keys');
  const listed = await request('GET', '/keys', token);
  t.is(listed.status, 200, listed.text);
  const keys = listed.json.keys as Record<string, unknown>[];
  t.true(keys.length >= 2, 'the RS256 family: next and current');
  for (const key of keys) {
    t.false('jwk' in key);
    t.false('d' in key);
  }
  const current = keys.find((k) => k.status === 'current' && k.alg === as.config.accessTokenAlg)?.kid;

  const rotated = await request('POST', '/keys/rotate', token, {});
  t.is(rotated.status, 200, rotated.text);
  const after = rotated.json.keys as { kid: string; status: string }[];
  t.is(after.find((k) => k.kid === current)?.status, 'retired');
  // The admin token signed by the now retired key keeps working.
  t.is((await request('GET', '/keys', token)).status, 200);

  const newCurrent = after.find((k) => k.status === 'current')?.kid as string;
  const refused = await request('POST', `/keys/${newCurrent}/retire`, token);
  t.is(refused.status, 409, refused.text);
  assertJsonError(t, refused, 'retire current');
  const unknown = await request('POST', '/keys/no-such-kid/retire', token);
  t.is(unknown.status, 404, unknown.text);

  const retired = await request('POST', `/keys/${current}/retire`, token);
  t.is(retired.status, 200, retired.text);
  t.false((retired.json.keys as { kid: string }[]).some((k) => k.kid === current));
  t.false(((await as.store.keyRing.read())?.keys ?? []).some((k) => k.kid === current));
});

test.serial('admin:clients alone: resources list/add/remove', async (t) => {
  const token = await tokenFor('admin:clients');
  const uri = 'https://new-api.admin-it.test';
  const added = await request('POST', '/resources', token, {
    uri,
    scope: 'new:read new:write',
    token_ttl: 300,
  });
  t.is(added.status, 201, added.text);
  t.like(added.json, { uri, scopes: ['new:read', 'new:write'], token_ttl: 300, alg: 'RS256' });
  // An API naming its own algorithm: the key ring gains that family before the API is listed.
  const es = 'https://es-api.admin-it.test';
  const named = await request('POST', '/resources', token, { uri: es, scope: 'es:read', alg: 'ES256' });
  t.is(named.status, 201, named.text);
  t.is(named.json.alg, 'ES256');
  t.true(
    ((await as.store.keyRing.read())?.keys ?? []).some((k) => k.alg === 'ES256' && k.status === 'current'),
  );
  const bad = await request('POST', '/resources', token, {
    uri: 'https://hs.admin-it.test',
    scope: 'x',
    alg: 'HS256',
  });
  t.is(bad.status, 400, bad.text);
  const listed = await request('GET', '/resources', token);
  t.is(listed.status, 200);
  const resources = listed.json.resources as { uri: string; alg: string }[];
  t.true(resources.some((r) => r.uri === uri && r.alg === 'RS256'));
  t.true(resources.some((r) => r.uri === es && r.alg === 'ES256'));
  t.is((await request('DELETE', `/resources?uri=${encodeURIComponent(es)}`, token)).status, 200);
  const removed = await request('DELETE', `/resources?uri=${encodeURIComponent(uri)}`, token);
  t.is(removed.status, 200, removed.text);
  t.deepEqual(removed.json, { removed: uri });
  t.is(await as.store.resources.get(uri), undefined);
  const again = await request('DELETE', `/resources?uri=${encodeURIComponent(uri)}`, token);
  t.is(again.status, 404, again.text);
});

test.serial(
  'admin:clients alone: clients list/add/show/rotate-secret/remove, and the client works at once',
  async (t) => {
    const token = await tokenFor('admin:clients');
    const id = 'made-by-api';
    const created = await request('POST', '/clients', token, {
      client_id: id,
      grant_types: ['client_credentials'],
      scope: 'reports:read',
      resources: [api],
    });
    t.is(created.status, 201, created.text);
    t.is(created.json.client_id, id);
    const secret = String(created.json.client_secret);
    secretsSeen.add(secret);
    t.true(secret.length >= 32);
    const issued = await clientCredentialsToken(as.issuer, { id, secret }, { scope: 'reports:read' });
    t.is(decodeJwt(issued).client_id, id);

    const duplicate = await request('POST', '/clients', token, {
      client_id: id,
      grant_types: ['client_credentials'],
      scope: 'reports:read',
      resources: [api],
    });
    t.is(duplicate.status, 409, duplicate.text);

    const listed = await request('GET', '/clients', token);
    t.is(listed.status, 200);
    t.true((listed.json.clients as { client_id: string }[]).some((c) => c.client_id === id));
    t.false(listed.text.includes(secret));
    for (const client of listed.json.clients as Record<string, unknown>[]) t.false('client_secret' in client);

    const shown = await request('GET', `/clients/${id}`, token);
    t.is(shown.status, 200);
    t.like(shown.json, { client_id: id, scope: 'reports:read', resources: [api] });
    t.false('client_secret' in shown.json);

    const rotated = await request('POST', `/clients/${id}/rotate-secret`, token);
    t.is(rotated.status, 200, rotated.text);
    const newSecret = String(rotated.json.client_secret);
    secretsSeen.add(newSecret);
    t.not(newSecret, secret);
    await t.throwsAsync(clientCredentialsToken(as.issuer, { id, secret }, { scope: 'reports:read' }));
    await clientCredentialsToken(as.issuer, { id, secret: newSecret }, { scope: 'reports:read' });

    const removed = await request('DELETE', `/clients/${id}`, token);
    t.is(removed.status, 200, removed.text);
    t.is((await request('GET', `/clients/${id}`, token)).status, 404);
    await t.throwsAsync(
      clientCredentialsToken(as.issuer, { id, secret: newSecret }, { scope: 'reports:read' }),
    );
  },
);

test.serial(
  'admin:clients cannot escalate: no granting, taking over or reshaping admin access it lacks',
  async (t) => {
    const token = await tokenFor('admin:clients');
    const escalate = await request('POST', '/clients', token, {
      client_id: 'escalator',
      grant_types: ['client_credentials'],
      scope: 'admin:keys admin:users',
      resources: [audience],
    });
    t.is(escalate.status, 403, escalate.text);
    t.is(escalate.json.error, 'forbidden');

    for (const [method, path] of [
      ['POST', '/clients/admin-keys/rotate-secret'],
      ['DELETE', '/clients/admin-users'],
    ] as const) {
      const r = await request(method, path, token);
      t.is(r.status, 403, `${method} ${path}`);
    }
    t.is(
      (await request('POST', '/resources', token, { uri: audience, scope: 'admin:keys admin:super' })).status,
      403,
    );
    t.is((await request('DELETE', `/resources?uri=${encodeURIComponent(audience)}`, token)).status, 403);

    // Holding admin:clients itself, it may hand that one on.
    const delegated = await request('POST', '/clients', token, {
      client_id: 'second-client-admin',
      grant_types: ['client_credentials'],
      scope: 'admin:clients',
      resources: [audience],
    });
    t.is(delegated.status, 201, delegated.text);
    secretsSeen.add(String(delegated.json.client_secret));
  },
);

test.serial('admin:users alone: users list/add/set-password/remove', async (t) => {
  const token = await tokenFor('admin:users');
  const email = 'carol@admin-it.test';
  const password = 'carol-first-password';
  const newPassword = 'carol-second-password';
  secretsSeen.add(password);
  secretsSeen.add(newPassword);

  const added = await request('POST', '/users', token, { email, name: 'Carol', password });
  t.is(added.status, 201, added.text);
  t.is(added.json.email, email);
  t.regex(String(added.json.sub), /\S/);
  t.false(added.text.includes(password));
  t.truthy(await as.store.users.verifyPassword(email, password));

  const listed = await request('GET', '/users', token);
  t.is(listed.status, 200);
  t.true((listed.json.users as { email: string }[]).some((u) => u.email === email));
  t.false(listed.text.includes('password_hash'));
  t.false(listed.text.includes('$argon2'));

  const changed = await request('PUT', `/users/${encodeURIComponent(email)}/password`, token, {
    password: newPassword,
  });
  t.is(changed.status, 200, changed.text);
  t.is(await as.store.users.verifyPassword(email, password), undefined);
  t.truthy(await as.store.users.verifyPassword(email, newPassword));

  const removed = await request('DELETE', `/users/${encodeURIComponent(email)}`, token);
  t.is(removed.status, 200, removed.text);
  t.is(await as.store.users.findByEmail(email), undefined);
  t.is((await request('DELETE', `/users/${encodeURIComponent(email)}`, token)).status, 404);
});

test.serial('malformed JSON, unknown fields and wrong types: 400 with a JSON error, never 5xx', async (t) => {
  const clientsToken = await tokenFor('admin:clients');
  const usersToken = await tokenFor('admin:users');
  const keysToken = await tokenFor('admin:keys');
  const cases: { token: string; method: string; path: string; raw?: string; body?: unknown; name: string }[] =
    [
      {
        name: 'truncated JSON',
        token: clientsToken,
        method: 'POST',
        path: '/clients',
        raw: '{"client_id": ',
      },
      {
        name: 'not JSON',
        token: clientsToken,
        method: 'POST',
        path: '/resources',
        raw: 'uri=https://x.test',
      },
      { name: 'a JSON string', token: usersToken, method: 'POST', path: '/users', raw: '"hello"' },
      { name: 'JSON null', token: usersToken, method: 'POST', path: '/users', raw: 'null' },
      { name: 'a JSON array', token: clientsToken, method: 'POST', path: '/resources', raw: '[1,2]' },
      {
        name: 'unknown field on a client',
        token: clientsToken,
        method: 'POST',
        path: '/clients',
        body: {
          client_id: 'mass-assign',
          grant_types: ['client_credentials'],
          scope: 'reports:read',
          resources: [api],
          client_secret: 'chosen-by-attacker',
        },
      },
      {
        name: 'unknown field on a resource',
        token: clientsToken,
        method: 'POST',
        path: '/resources',
        body: { uri: 'https://y.test', scope: 'y:z', created_at: 'then' },
      },
      {
        name: 'unknown field on a user',
        token: usersToken,
        method: 'POST',
        path: '/users',
        body: { email: 'dan@admin-it.test', password: 'dan-password-1234', email_verified: true },
      },
      {
        name: 'unknown field on rotate',
        token: keysToken,
        method: 'POST',
        path: '/keys/rotate',
        body: { force: 1 },
      },
      { name: 'wrong type', token: keysToken, method: 'POST', path: '/keys/rotate', body: { now: 'yes' } },
      {
        name: 'wrong types on a client',
        token: clientsToken,
        method: 'POST',
        path: '/clients',
        body: { client_id: 7, grant_types: 'client_credentials', scope: ['a'] },
      },
      {
        name: 'an unknown grant',
        token: clientsToken,
        method: 'POST',
        path: '/clients',
        body: { client_id: 'bad-grant', grant_types: ['password'], scope: 'reports:read', resources: [api] },
      },
      {
        name: 'an unknown resource',
        token: clientsToken,
        method: 'POST',
        path: '/clients',
        body: {
          client_id: 'bad-resource',
          grant_types: ['client_credentials'],
          scope: 'reports:read',
          resources: ['https://unknown.test'],
        },
      },
      {
        name: 'a relative resource URI',
        token: clientsToken,
        method: 'POST',
        path: '/resources',
        body: { uri: '/relative', scope: 'a:b' },
      },
      { name: 'an empty body', token: usersToken, method: 'POST', path: '/users', raw: '' },
      {
        name: 'a short password',
        token: usersToken,
        method: 'POST',
        path: '/users',
        body: { email: 'eve@admin-it.test', password: 'short' },
      },
      {
        name: 'a password that is not a string',
        token: usersToken,
        method: 'PUT',
        path: '/users/eve%40admin-it.test/password',
        body: { password: 12 },
      },
    ];
  for (const c of cases) {
    const r = await request(c.method, c.path, c.token, c.body, c.raw);
    t.is(r.status, 400, `${c.name}: ${r.status} ${r.text}`);
    assertJsonError(t, r, c.name);
  }
  const big = await request(
    'POST',
    '/resources',
    clientsToken,
    undefined,
    JSON.stringify({ uri: 'x'.repeat(64 * 1024) }),
  );
  t.true(big.status >= 400 && big.status < 500, `oversized body: ${big.status}`);
  assertJsonError(t, big, 'oversized body');
  t.is(await as.store.clients.get('mass-assign'), undefined);
  t.is(await as.store.users.findByEmail('dan@admin-it.test'), undefined);
});

test.serial('a revoked admin token stops working at once: 401', async (t) => {
  const token = await tokenFor('admin:users');
  t.is((await request('GET', '/users', token)).status, 200);
  const revoked = await revoke(as.issuer, admins['admin:users'], token);
  t.is(revoked.status, 200, revoked.text);
  const r = await request('GET', '/users', token);
  t.is(r.status, 401, r.text);
  t.is(r.json.error, 'invalid_token');
});

test.serial(
  'every admin action is in the audit log with actor, action, source and outcome; secrets never',
  async (t) => {
    const entries = await as.store.audit.recent(1000);
    const actions = new Set(entries.map((e) => e.action));
    for (const action of [
      'keys.list',
      'keys.rotate',
      'keys.retire',
      'resources.list',
      'resources.add',
      'resources.remove',
      'clients.list',
      'clients.add',
      'clients.show',
      'clients.remove',
      'clients.rotate-secret',
      'users.list',
      'users.add',
      'users.set-password',
      'users.remove',
    ])
      t.true(actions.has(action), action);
    for (const entry of entries) {
      t.regex(entry.actor, /admin-(keys|clients|users)/, JSON.stringify(entry));
      t.regex(entry.source, /127\.0\.0\.1|::1/, JSON.stringify(entry));
      t.true(['ok', 'refused', 'failed'].includes(entry.outcome));
      t.false(Number.isNaN(Date.parse(entry.at)));
    }
    const find = (action: string, outcome: AuditEntry['outcome']) =>
      entries.find((e) => e.action === action && e.outcome === outcome);
    t.truthy(find('keys.rotate', 'ok'));
    // A 409 (retiring the current key) and a 404 (unknown kid) are refusals, not server failures.
    for (const entry of entries.filter((e) => e.action === 'keys.retire' && e.target !== undefined)) {
      if (entry.outcome !== 'ok') t.is(entry.outcome, 'refused', `keys.retire ${entry.target} answered 4xx`);
    }
    t.truthy(find('keys.retire', 'refused'), 'retiring the current key is audited as refused');
    t.like(
      entries.find((e) => e.action === 'clients.add' && e.target === 'made-by-api'),
      { actor: 'admin-clients via admin-clients', outcome: 'ok' },
    );
    t.like(find('users.add', 'ok'), { actor: 'admin-users via admin-users' });
    t.true(
      entries.every((e) => e.outcome !== 'failed'),
      'no server failure',
    );

    const text = JSON.stringify(entries);
    for (const secret of secretsSeen) t.false(text.includes(secret), 'a secret in the audit log');
    t.false(text.includes('"client_secret"'));
    t.false(text.includes('$argon2'));
    // Sealed at rest: nothing of the above readable in Redis either.
    const dump = await dumpPrefix(redis, prefix);
    for (const secret of secretsSeen) t.false(dump.includes(secret), 'a secret readable in Redis');
    t.false(dump.includes('made-by-api via'));
  },
);

test.serial('a request refused for its scope is audited too (who tried what, refused)', async (t) => {
  const token = await tokenFor('admin:users');
  const r = await request('POST', '/keys/rotate', token, {});
  t.is(r.status, 403);
  const entries = await as.store.audit.recent(50);
  t.truthy(
    entries.find(
      (e) => e.action === 'keys.rotate' && e.outcome === 'refused' && e.actor.includes('admin-users'),
    ),
    'an authenticated admin caller refused by least privilege leaves no audit entry',
  );
});

test.serial(
  'emergency rotation through the admin API: tokens signed by the dropped key stop working within 5 s',
  async (t) => {
    const token = await tokenFor('admin:keys');
    const rotated = await request('POST', '/keys/rotate', token, { now: true });
    t.is(rotated.status, 200, rotated.text);
    const newCurrent = (rotated.json.keys as { kid: string; alg: string; status: string }[]).find(
      (k) => k.alg === as.config.accessTokenAlg && k.status === 'current',
    )?.kid;
    t.true(
      await eventually(async () => (await request('GET', '/keys', token)).status === 401),
      'the token signed by the dropped key is refused within 5 s',
    );
    t.true(
      await eventually(async () => decodeProtectedHeader(await tokenFor('admin:keys')).kid === newCurrent),
    );
    const fresh = await tokenFor('admin:keys');
    t.is((await request('GET', '/keys', fresh)).status, 200);
    const entries = await as.store.audit.recent(10);
    t.like(
      entries.find((e) => e.action === 'keys.rotate' && e.target === 'emergency'),
      { outcome: 'ok' },
    );
  },
);

test.serial(
  "issue 9 #1: a signed-in user's token from a login-flow client holding an admin scope is refused, and audited",
  async (t) => {
    // Registration now refuses such a client, so it is written the way an older version stored it.
    const id = 'legacy-login-admin';
    const secret = 'legacy-login-admin-secret-0123456789abcdef';
    const redirectUri = 'http://127.0.0.1:9/callback';
    const key = as.store.keys.model('Client', id);
    await as.store.kv.putRecord(
      key,
      as.store.box.sealJson(
        {
          client_id: id,
          client_secret: secret,
          grant_types: ['authorization_code'],
          response_types: ['code'],
          redirect_uris: [redirectUri],
          post_logout_redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
          resource_scopes: ['admin:users'],
          resources: [audience],
          first_party: true,
          created_at: new Date().toISOString(),
        },
        key,
      ),
    );
    await as.store.kv.hashSetIfAbsent(as.store.keys.clientIndex(), id, new Date().toISOString());
    const customer = await as.store.users.add({
      email: 'mallory@admin-it.test',
      password: 'mallory-password',
    });
    const victim = await as.store.users.add({ email: 'victim@admin-it.test', password: 'victim-password' });
    const before = (await as.store.audit.recent(1000)).length;

    const { access_token: token } = await userTokens(as, {
      client: { id, secret },
      redirectUri,
      accountId: customer.sub,
      scope: 'admin:users',
      resource: audience,
    });
    const claims = decodeJwt(token);
    t.is(claims.sub, customer.sub, 'a real end-user access token for the admin audience');
    t.is(claims.aud, audience);

    const listed = await request('GET', '/users', token);
    t.is(listed.status, 401, listed.text);
    t.is(listed.json.error, 'invalid_token');
    t.regex(challenge(listed), /error="invalid_token"/);
    const changed = await request('PUT', `/users/${encodeURIComponent(victim.email)}/password`, token, {
      password: 'taken-over-password',
    });
    t.is(changed.status, 401, changed.text);
    t.truthy(
      await as.store.users.verifyPassword(victim.email, 'victim-password'),
      'the password is unchanged',
    );

    const entries = await as.store.audit.recent(1000);
    t.true(entries.length > before);
    t.truthy(
      entries.find(
        (e) => e.action === 'admin-api.authenticate' && e.outcome === 'refused' && e.actor.includes(id),
      ),
      'the refused user token is in the audit log',
    );
  },
);

test.serial(
  'issue 9 #1: the admin API refuses registering an admin scope on a client with any grant but client_credentials, and audits it',
  async (t) => {
    const token = await tokenFor('admin:clients');
    for (const grants of [['authorization_code'], ['authorization_code', 'refresh_token']]) {
      const r = await request('POST', '/clients', token, {
        client_id: `login-admin-${grants.length}`,
        grant_types: grants,
        scope: 'admin:clients',
        resources: [audience],
        redirect_uris: ['https://app.admin-it.test/callback'],
      });
      t.is(r.status, 400, r.text);
      t.regex(String(r.json.error_description), /admin:\* scopes .*client_credentials/);
      t.is(await as.store.clients.get(`login-admin-${grants.length}`), undefined);
    }
    const entries = await as.store.audit.recent(50);
    t.truthy(entries.find((e) => e.action === 'clients.add' && e.outcome === 'refused'));
  },
);
