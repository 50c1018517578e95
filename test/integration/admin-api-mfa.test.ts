import test from 'ava';
import type { Redis } from 'ioredis';
import { buildAdminApp, ensureAdminResource } from '../../src/authorization-server/admin-api/app.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';
import { bearer, call, clientCredentialsToken, type Served, serve, silentLogger } from './support/harness.ts';

/** The admin API's second-factor resets, under admin:users only. */
const prefix = testPrefix('it-admin-mfa');
const audience = 'https://admin.mfa.test';
let redis: Redis;
let as: RunningAuthServer;
let admin: Served;
const tokens = {} as Record<'users' | 'keys', string>;

test.before(async () => {
  redis = await connectRedis();
  as = await startAuthServer({ prefix, secrets: testSecrets(), env: { TOKEN_RATE_LIMIT: '0' } });
  await ensureAdminResource(as.store, audience);
  for (const area of ['users', 'keys'] as const) {
    const scope = `admin:${area}`;
    const { client_secret } = await as.store.clients.add({
      id: `admin-${area}`,
      grants: ['client_credentials'],
      scope: [scope],
      resources: [audience],
      redirectUris: [],
      postLogoutRedirectUris: [],
    });
    tokens[area] = await clientCredentialsToken(
      as.issuer,
      { id: `admin-${area}`, secret: String(client_secret) },
      { scope, resource: audience },
    );
  }
  await as.store.users.add({ email: 'reset.me@example.com', password: 'a long enough password' });
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

test.serial('admin:users enrols an authenticator app and removes it; passkeys are removed too', async (t) => {
  const enrolled = await call(`${admin.url}/users/reset.me@example.com/totp`, {
    method: 'POST',
    headers: bearer(tokens.users),
  });
  t.is(enrolled.status, 201);
  const secret = enrolled.json.secret as string;
  t.regex(secret, /^[A-Z2-7]{32}$/);
  t.regex(enrolled.json.otpauth_uri as string, /^otpauth:\/\/totp\//);
  t.is((enrolled.json.recovery_codes as string[]).length, 10);
  t.is((await as.store.users.findByEmail('reset.me@example.com'))?.totp?.secret, secret);

  const removed = await call(`${admin.url}/users/reset.me@example.com/totp`, {
    method: 'DELETE',
    headers: bearer(tokens.users),
  });
  t.is(removed.status, 200);
  t.like(removed.json, { email: 'reset.me@example.com', totp: false });
  t.is((await as.store.users.findByEmail('reset.me@example.com'))?.totp, undefined);

  const passkeys = await call(`${admin.url}/users/reset.me@example.com/passkeys`, {
    method: 'DELETE',
    headers: bearer(tokens.users),
  });
  t.is(passkeys.status, 200);
  t.like(passkeys.json, { passkeys_removed: 0 });
});

test.serial('other admin areas and unknown users are refused in JSON', async (t) => {
  const wrongScope = await call(`${admin.url}/users/reset.me@example.com/totp`, {
    method: 'POST',
    headers: bearer(tokens.keys),
  });
  t.is(wrongScope.status, 403);
  t.is((await as.store.users.findByEmail('reset.me@example.com'))?.totp, undefined);
  for (const method of ['POST', 'DELETE']) {
    const missing = await call(`${admin.url}/users/nobody@example.com/totp`, {
      method,
      headers: bearer(tokens.users),
    });
    t.is(missing.status, 404, method);
    t.is(missing.json.error, 'not_found');
  }
});
