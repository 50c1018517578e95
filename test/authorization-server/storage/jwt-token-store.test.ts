import { setTimeout } from 'node:timers/promises';
import test from 'ava';
import type { Redis } from 'ioredis';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { JwtTokenStore } from '../../../src/authorization-server/storage/jwt-token-store.ts';
import { clientCredentialsToken, introspect } from '../../integration/support/harness.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../../support/redis.ts';

const prefix = testPrefix('jwt-token-store');
const API = 'https://short-lived.api.test';
const LONG_LIVED_API = 'https://long-lived.api.test';
let redis: Redis;
let server: RunningAuthServer;
const client = { id: 'short-lived-m2m', secret: '' };

test.before(async () => {
  redis = await connectRedis();
  server = await startAuthServer({ prefix, secrets: testSecrets(), env: { TOKEN_RATE_LIMIT: '100000' } });
  await server.store.resources.add({ uri: API, scopes: ['reports:read'], token_ttl: 1 });
  await server.store.resources.add({ uri: LONG_LIVED_API, scopes: ['reports:read'], token_ttl: 600 });
  const created = await server.store.clients.add({
    id: client.id,
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [API, LONG_LIVED_API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  client.secret = String(created.client_secret);
});

test.after.always(async () => {
  await server?.close();
  if (redis) {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  }
});

/** Entries of every per-signing-key token index, whatever its Redis type. */
async function signedByEntries(): Promise<number> {
  const keys = await redis.keys(`${prefix}signed-by*`);
  let total = 0;
  for (const key of keys) {
    const type = await redis.type(key);
    total += type === 'zset' ? await redis.zcard(key) : type === 'set' ? await redis.scard(key) : 0;
  }
  return total;
}

test.serial(
  'issue 9 finding 6: under steady issuance the per-signing-key index holds live tokens only',
  async (t) => {
    // Tokens living 1 s, issued one after another, paced, for 4 s (at most 250): the index must not
    // keep the expired ones, though a new token arrives before the index itself could expire.
    const issued: string[] = [];
    const until = Date.now() + 4000;
    let threshold = 0;
    while (Date.now() < until && issued.length < 250) {
      threshold = Math.floor(Date.now() / 1000);
      issued.push(await clientCredentialsToken(server.issuer, client, { resource: API }));
      await setTimeout(15);
    }
    const unexpiredAtLastAdd = issued.filter((token) => Number(decodeJwt(token).exp) > threshold).length;
    const entries = await signedByEntries();
    t.true(issued.length > 2 * unexpiredAtLastAdd, 'most tokens issued had expired by the end');
    t.true(
      entries <= unexpiredAtLastAdd,
      `${entries} index entries for ${unexpiredAtLastAdd} live tokens (${issued.length} issued)`,
    );
    const kid = String(decodeProtectedHeader(issued.at(-1) as string).kid);
    t.is(await server.store.jwtTokens.signedByCount(kid), entries);
    // The index lives no longer than its newest token.
    const ttl = await redis.pttl(`${prefix}signed-by-expiry:${kid}`);
    t.true(ttl > 0 && ttl <= 2000, `index TTL ${ttl} ms`);
  },
);

test.serial('an emergency revocation empties a signing key in bounded batches', async (t) => {
  const tokens = new JwtTokenStore(server.store.kv, server.store.keys, { revokeBatch: 2 });
  const issued = await Promise.all(
    Array.from({ length: 5 }, () =>
      clientCredentialsToken(server.issuer, client, { resource: LONG_LIVED_API, scope: 'reports:read' }),
    ),
  );
  const kid = String(decodeProtectedHeader(issued[0] as string).kid);
  const revoked = await tokens.revokeSignedBy(kid);
  t.true(revoked >= 5, `${revoked} records revoked`);
  t.is(await tokens.signedByCount(kid), 0);
  for (const token of issued) {
    t.is(await tokens.liveModel(String(decodeJwt(token).jti)), undefined);
    const answer = await introspect(server.issuer, client, token);
    t.false(answer.json.active);
  }
});
