import test from 'ava';
import type { Redis } from 'ioredis';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { cliJson, runCli } from '../support/cli.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';

/**
 * Access tokens are RS256 unless their API names another algorithm (RFC 9068 §2.1: RS256 is the one
 * every resource server must accept); ID tokens stay RS256; the key ring keeps one family per
 * algorithm in use and rotates them together.
 */
const prefix = testPrefix('alg');
const secrets = testSecrets();
const cliEnv = { REDIS_PREFIX: prefix, ...secrets };
const APIS = {
  RS256: 'https://plain.alg.test',
  PS256: 'https://ps.alg.test',
  ES256: 'https://es.alg.test',
  EdDSA: 'https://ed.alg.test',
} as const;
type Alg = keyof typeof APIS;
const ALGS = Object.keys(APIS) as Alg[];

let redis: Redis;
let server: RunningAuthServer;
let client: oidc.Configuration;

test.before(async () => {
  redis = await connectRedis();
  server = await startAuthServer({ prefix, secrets });
  // The API naming none gets the default; the others name theirs, through the CLI and the store.
  await server.store.resources.add({ uri: APIS.RS256, scopes: ['plain:read'] });
  await cliJson(['resources', 'add', '--uri', APIS.ES256, '--scope', 'es:read', '--alg', 'ES256'], cliEnv);
  await server.store.resources.add({ uri: APIS.PS256, scopes: ['ps:read'], alg: 'PS256' });
  await server.store.resources.add({ uri: APIS.EdDSA, scopes: ['ed:read'], alg: 'EdDSA' });
  const { client_secret } = await server.store.clients.add({
    id: 'alg-m2m',
    grants: ['client_credentials'],
    scope: ['plain:read', 'ps:read', 'es:read', 'ed:read'],
    resources: Object.values(APIS),
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  client = await oidc.discovery(
    new URL(server.issuer),
    'alg-m2m',
    undefined,
    oidc.ClientSecretBasic(client_secret as string),
    { execute: [oidc.allowInsecureRequests] },
  );
});

test.after.always(async () => {
  await server?.close();
  if (redis) {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  }
});

/** Polls until the provider has loaded every family (the ring changes announce a reload). */
async function tokenFor(api: string, scope: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await oidc.clientCredentialsGrant(client, { scope, resource: api })).access_token;
    } catch (error) {
      if ((error as { error?: string }).error !== 'temporarily_unavailable' || attempt > 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

const SCOPES: Record<Alg, string> = {
  RS256: 'plain:read',
  PS256: 'ps:read',
  ES256: 'es:read',
  EdDSA: 'ed:read',
};

test.serial('each API gets tokens signed with its algorithm, RS256 when it names none', async (t) => {
  const jwks = createRemoteJWKSet(new URL(client.serverMetadata().jwks_uri as string));
  const ring = await server.store.keyRing.read();
  for (const alg of ALGS) {
    const token = await tokenFor(APIS[alg], SCOPES[alg]);
    const header = decodeProtectedHeader(token);
    t.is(header.alg, alg, APIS[alg]);
    t.is(header.typ, 'at+jwt');
    t.is(header.kid, ring?.keys.find((k) => k.alg === alg && k.status === 'current')?.kid);
    // A resource server that accepts only this algorithm verifies it against the published JWKS.
    const { payload } = await jwtVerify(token, jwks, {
      issuer: server.issuer,
      audience: APIS[alg],
      typ: 'at+jwt',
      algorithms: [alg],
    });
    t.is(payload.scope, SCOPES[alg]);
  }
});

test.serial('`resources list` shows each API’s algorithm; a bad --alg is refused', async (t) => {
  const listed = (await cliJson(['resources', 'list'], cliEnv)).resources as { uri: string; alg: string }[];
  for (const alg of ALGS) t.is(listed.find((r) => r.uri === APIS[alg])?.alg, alg);
  for (const bad of ['HS256', 'none', 'RS512']) {
    const refused = await runCli(
      ['resources', 'add', '--uri', 'https://bad.alg.test', '--scope', 'x:read', '--alg', bad, '--json'],
      cliEnv,
    );
    t.not(refused.code, 0, bad);
    t.is(refused.stdout, '');
    await t.throwsAsync(
      server.store.resources.add({ uri: 'https://bad.alg.test', scopes: ['x'], alg: bad }),
      {
        message: /alg/,
      },
    );
  }
  t.is(await server.store.resources.get('https://bad.alg.test'), undefined);
});

test.serial('ID tokens are RS256 only, and discovery says so', async (t) => {
  const metadata = client.serverMetadata();
  t.deepEqual(metadata.id_token_signing_alg_values_supported, ['RS256']);
});

test.serial(
  '`keys list` shows a next and a current key for every family; a rotation rotates them all together',
  async (t) => {
    const before = (await cliJson(['keys', 'list'], cliEnv)).keys as {
      kid: string;
      alg: string;
      status: string;
    }[];
    for (const alg of ALGS) {
      t.is(before.filter((k) => k.alg === alg && k.status === 'current').length, 1, alg);
      t.is(before.filter((k) => k.alg === alg && k.status === 'next').length, 1, alg);
    }
    const published = (await (await fetch(`${server.issuer}/jwks`)).json()) as { keys: { kid: string }[] };
    t.deepEqual(published.keys.map((k) => k.kid).sort(), before.map((k) => k.kid).sort());

    const after = (await cliJson(['keys', 'rotate'], cliEnv)).keys as typeof before;
    for (const alg of ALGS) {
      const was = (status: string) => before.find((k) => k.alg === alg && k.status === status)?.kid;
      t.is(after.find((k) => k.kid === was('current'))?.status, 'retired', alg);
      t.is(after.find((k) => k.kid === was('next'))?.status, 'current', alg);
      t.is(after.filter((k) => k.alg === alg && k.status === 'next').length, 1, alg);
    }
    // Every instance signs with the new current keys once it reloads (pub/sub, at most RELOAD_INTERVAL_MS).
    for (const alg of ALGS) {
      const current = after.find((k) => k.alg === alg && k.status === 'current')?.kid;
      let kid: string | undefined;
      for (let i = 0; i < 100 && kid !== current; i++) {
        kid = decodeProtectedHeader(await tokenFor(APIS[alg], SCOPES[alg])).kid;
        if (kid !== current) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      t.is(kid, current, alg);
    }
  },
);

test('ACCESS_TOKEN_ALG is the default for APIs that name none; an API naming RS256 keeps it', async (t) => {
  const otherPrefix = testPrefix('alg-default');
  const other = await startAuthServer({
    prefix: otherPrefix,
    secrets: testSecrets(),
    env: { ACCESS_TOKEN_ALG: 'ES256' },
  });
  try {
    const plain = await other.store.resources.add({ uri: 'https://plain.default.test', scopes: ['p:read'] });
    const named = await other.store.resources.add({
      uri: 'https://named.default.test',
      scopes: ['n:read'],
      alg: 'RS256',
    });
    t.is(plain.alg, 'ES256');
    t.is(named.alg, 'RS256');
    const { client_secret } = await other.store.clients.add({
      id: 'default-m2m',
      grants: ['client_credentials'],
      scope: ['p:read', 'n:read'],
      resources: [plain.uri, named.uri],
      redirectUris: [],
      postLogoutRedirectUris: [],
    });
    const otherClient = await oidc.discovery(
      new URL(other.issuer),
      'default-m2m',
      undefined,
      oidc.ClientSecretBasic(client_secret as string),
      { execute: [oidc.allowInsecureRequests] },
    );
    const grant = (resource: string, scope: string) =>
      oidc.clientCredentialsGrant(otherClient, { resource, scope }).then((r) => r.access_token);
    t.is(decodeProtectedHeader(await grant(plain.uri, 'p:read')).alg, 'ES256');
    t.is(decodeProtectedHeader(await grant(named.uri, 'n:read')).alg, 'RS256');
    t.deepEqual(otherClient.serverMetadata().id_token_signing_alg_values_supported, ['RS256']);
  } finally {
    await other.close();
    await deletePrefix(redis, otherPrefix);
  }
});
