import test from 'ava';
import type { Redis } from 'ioredis';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import {
  families,
  type KeyRing,
  type SigningKey,
} from '../../src/authorization-server/keys/signing-key-ring.ts';
import { KeyRingStore } from '../../src/authorization-server/storage/key-ring-store.ts';
import { MAX_TOKEN_LIFETIME_SECONDS } from '../../src/config/fields.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { cliJson, runCli } from '../support/cli.ts';
import { connectRedis, deletePrefix, dumpPrefix, testPrefix } from '../support/redis.ts';
import {
  bearer,
  type ClientCredentials,
  call,
  clientCredentialsToken,
  dumpFolder,
  eventually,
  introspect,
  type Served,
  startResourceServer,
  userTokens,
} from './support/harness.ts';

const prefix = testPrefix('it-keys');
const secrets = testSecrets();
const cliEnv = { REDIS_PREFIX: prefix, ...secrets };
const env = { RELOAD_INTERVAL_MS: '500', TOKEN_RATE_LIMIT: '0' };
const api = 'https://insurance-api.rotation.test';
const redirectUri = 'https://app.rotation.test/callback';
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'] as const;
/** The API's own access-token algorithm (`resources add --alg`); ID tokens are always RS256. */
const AT_ALG = 'EdDSA';

let redis: Redis;
let a: RunningAuthServer;
let b: RunningAuthServer;
let rs: Served;
const extraServers: Served[] = [];
let m2m: ClientCredentials;
let web: ClientCredentials;
let alice: string;
/** Every private key value the ring ever held during the test, for the at-rest scan. */
const privateValues = new Set<string>();
/** A token signed by the first current access-token key, kept across rotations. */
let oldToken: string;
let oldKid: string;

async function ring(): Promise<KeyRing> {
  const read = await a.store.keyRing.read();
  if (!read) throw new Error('no key ring');
  for (const key of read.keys)
    for (const member of PRIVATE_MEMBERS) {
      const value = (key.jwk as Record<string, unknown>)[member];
      if (typeof value === 'string') privateValues.add(value);
    }
  return read;
}

async function currentKey(alg: string): Promise<SigningKey> {
  const key = (await ring()).keys.find((k) => k.alg === alg && k.status === 'current');
  if (!key) throw new Error(`no current ${alg} key`);
  return key;
}

async function jwksKids(server: RunningAuthServer): Promise<string[]> {
  const r = await call(`${base(server)}/jwks`);
  if (r.status !== 200) throw new Error(`jwks answered ${r.status}`);
  const keys = (r.json as { keys: Record<string, unknown>[] }).keys;
  for (const key of keys)
    for (const member of PRIVATE_MEMBERS)
      if (member in key) throw new Error(`the JWKS carries the private member ${member}`);
  return keys.map((k) => String(k.kid));
}

/** Where this very instance answers (both share one issuer identifier). */
const base = (server: RunningAuthServer) => `http://127.0.0.1:${server.port}`;
const m2mToken = (server: RunningAuthServer) =>
  clientCredentialsToken(base(server), m2m, { scope: 'reports:read' });
const kidOf = (token: string) => String(decodeProtectedHeader(token).kid);
const report = (token: string, server = rs) =>
  call(`${server.url}/reports/claims`, { headers: bearer(token) });

/** Polls until both instances sign access tokens with `kid`; false after 5 s. */
const bothSignWith = (kid: string) =>
  eventually(async () => kidOf(await m2mToken(a)) === kid && kidOf(await m2mToken(b)) === kid, 5000, 50);

test.before(async () => {
  redis = await connectRedis();
  a = await startAuthServer({ prefix, secrets, env });
  await a.store.resources.add({ uri: api, scopes: ['reports:read', 'policies:read'], alg: AT_ALG });
  const m2mCreated = await a.store.clients.add({
    id: 'm2m-rotation',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  m2m = { id: 'm2m-rotation', secret: String(m2mCreated.client_secret) };
  const webCreated = await a.store.clients.add({
    id: 'web-rotation',
    grants: ['authorization_code'],
    scope: ['openid', 'policies:read'],
    resources: [api],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    firstParty: true,
  });
  web = { id: 'web-rotation', secret: String(webCreated.client_secret) };
  alice = (await a.store.users.add({ email: 'alice@rotation.test', password: 'alice-password-123' })).sub;
  // One deployment behind one issuer identifier: the second instance listens on its own port but
  // names the same issuer (a load balancer would front both).
  b = await startAuthServer({ prefix, secrets, env: { ...env, ISSUER: a.issuer } });
  // The resource server as shipped: default JWKS cache and cooldown.
  rs = await startResourceServer({ issuer: a.issuer, audience: api });
  await ring();
});

test.after.always(async () => {
  await Promise.allSettled([rs?.close(), ...extraServers.map((s) => s.close()), a?.close(), b?.close()]);
  if (redis) {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  }
});

/** A resource server that has never seen the JWKS: it answers with what the AS publishes now. */
async function freshResourceServer(): Promise<Served> {
  const served = await startResourceServer({ issuer: a.issuer, audience: api });
  extraServers.push(served);
  return served;
}

test.serial(
  'JWKS publishes next and current keys; only current signs: access tokens with the configured alg, ID tokens RS256',
  async (t) => {
    t.not(AT_ALG, 'RS256', 'this deployment uses a separate access-token family');
    const keys = (await ring()).keys;
    t.deepEqual(
      keys.map((k) => `${k.alg}:${k.status}`).sort(),
      [`${AT_ALG}:current`, `${AT_ALG}:next`, 'RS256:current', 'RS256:next'].sort(),
    );
    for (const server of [a, b]) t.deepEqual((await jwksKids(server)).sort(), keys.map((k) => k.kid).sort());

    const listed = await cliJson(['keys', 'list'], cliEnv);
    const summaries = listed.keys as Record<string, unknown>[];
    t.false(JSON.stringify(listed).includes('"d"'));
    for (const summary of summaries) t.false('jwk' in summary);

    const atKey = await currentKey(AT_ALG);
    for (const server of [a, b]) {
      const token = await m2mToken(server);
      const header = decodeProtectedHeader(token);
      t.is(header.alg, AT_ALG);
      t.is(header.typ, 'at+jwt');
      t.is(header.kid, atKey.kid);
      t.like(
        summaries.find((s) => s.kid === header.kid),
        { status: 'current', alg: AT_ALG },
      );
      t.is((await report(token)).status, 200);
    }

    const rs256 = await currentKey('RS256');
    const { id_token: idToken } = await userTokens(a, {
      client: web,
      redirectUri,
      accountId: alice,
      scope: 'openid',
    });
    t.truthy(idToken);
    const idHeader = decodeProtectedHeader(String(idToken));
    t.is(idHeader.alg, 'RS256');
    t.is(idHeader.kid, rs256.kid);
    t.like(
      summaries.find((s) => s.kid === idHeader.kid),
      { status: 'current', alg: 'RS256' },
    );
    t.is(decodeJwt(String(idToken)).sub, alice);
    const discovery = await call(`${a.issuer}/.well-known/openid-configuration`);
    t.true((discovery.json.id_token_signing_alg_values_supported as string[]).includes('RS256'));

    oldToken = await m2mToken(a);
    oldKid = kidOf(oldToken);
  },
);

test.serial(
  'two instances keep issuing and the RS keeps accepting through two rotations; both sign with the new kid within 5 s',
  async (t) => {
    t.timeout(60_000);
    let stop = false;
    let issued = 0;
    let verified = 0;
    /** Tokens the RS accepted, per signing kid. */
    const verifiedBy = new Map<string, number>();
    const verifiedWith = (kid: string, count: number) =>
      eventually(async () => (verifiedBy.get(kid) ?? 0) >= count, 10_000, 20);
    const tokenFailures: string[] = [];
    const rejected: string[] = [];
    const loop = async () => {
      for (let i = 0; !stop && i < 100_000; i++) {
        const server = i % 2 === 0 ? a : b;
        let token: string;
        try {
          token = await m2mToken(server);
          issued++;
        } catch (error) {
          tokenFailures.push(`${server.port}: ${(error as Error).message}`);
          continue;
        }
        const r = await report(token).catch((error: Error) => ({ status: 0, text: error.message }));
        if (r.status === 200) {
          verified++;
          verifiedBy.set(kidOf(token), (verifiedBy.get(kidOf(token)) ?? 0) + 1);
        } else rejected.push(`${kidOf(token)} from ${server.port}: ${r.status} ${r.text}`);
      }
    };
    const running = loop();

    try {
      t.true(await verifiedWith(oldKid, 5), 'the loop runs before rotation 1');
      // Rotation 1, in-process through the store (what the admin API does).
      const before1 = (await currentKey(AT_ALG)).kid;
      const next1 = (await ring()).keys.find((k) => k.alg === AT_ALG && k.status === 'next')?.kid;
      const rotated1 = await a.store.keyRing.rotate();
      const current1 = rotated1.keys.find((k) => k.alg === AT_ALG && k.status === 'current')?.kid as string;
      t.is<string | undefined, string | undefined>(current1, next1, 'the next key became current');
      t.is(rotated1.keys.find((k) => k.kid === before1)?.status, 'retired');
      t.true(await bothSignWith(current1), 'both instances sign with the new kid within 5 s of rotation 1');
      await ring();
      // The RS knew the new current key before it signed anything (it was published as `next`), so
      // no refetch was needed; rotation 2's key is one it has never seen and must fetch.
      t.true(await verifiedWith(current1, 10), 'tokens of the new key verify after rotation 1');

      // Rotation 2, through the real admin CLI.
      const rotated2 = await cliJson(['keys', 'rotate'], cliEnv);
      const listed = rotated2.keys as { kid: string; alg: string; status: string }[];
      const current2 = listed.find((k) => k.alg === AT_ALG && k.status === 'current')?.kid as string;
      t.not(current2, current1);
      t.is(listed.find((k) => k.kid === current1)?.status, 'retired');
      t.true(await bothSignWith(current2), 'both instances sign with the new kid within 5 s of rotation 2');
      await ring();
      t.true(await verifiedWith(current2, 10), 'tokens of the new key verify after rotation 2');
    } finally {
      stop = true;
      await running;
    }

    t.deepEqual(tokenFailures, [], 'no failed token request');
    t.deepEqual(rejected, [], 'no valid token rejected by the RS');
    t.true(issued > 20, `the loop ran (${issued} tokens)`);
    t.is(verified, issued);
  },
);

test.serial(
  'a token signed by a retired key keeps verifying; after `keys retire` the key leaves both JWKS within 5 s',
  async (t) => {
    const listed = (await cliJson(['keys', 'list'], cliEnv)).keys as { kid: string; status: string }[];
    t.is(listed.find((k) => k.kid === oldKid)?.status, 'retired');
    t.true((decodeJwt(oldToken).exp as number) > Date.now() / 1000, 'the old token has not expired');

    t.is((await report(oldToken)).status, 200, 'the running RS still accepts it');
    const fresh = await freshResourceServer();
    t.is((await report(oldToken, fresh)).status, 200, 'a fresh RS finds the retired key in the JWKS');
    for (const server of [a, b]) t.true((await jwksKids(server)).includes(oldKid));

    // The current key cannot be retired.
    const current = (await currentKey(AT_ALG)).kid;
    const refused = await runCli(['keys', 'retire', current, '--json'], cliEnv);
    t.not(refused.code, 0);
    t.is(refused.stdout, '');

    const retired = await cliJson(['keys', 'retire', oldKid], cliEnv);
    t.false((retired.keys as { kid: string }[]).some((k) => k.kid === oldKid));
    t.true(
      await eventually(
        async () => !(await jwksKids(a)).includes(oldKid) && !(await jwksKids(b)).includes(oldKid),
      ),
      'the retired key is gone from both JWKS within 5 s',
    );
    const later = await freshResourceServer();
    const r = await report(oldToken, later);
    t.is(r.status, 401, r.text);
    t.is(r.json.error, 'invalid_token');
  },
);

test.serial(
  'an emergency rotation drops the old key from both JWKS within 5 s and its tokens introspect inactive',
  async (t) => {
    const leaked = await currentKey(AT_ALG);
    const leakedRsa = await currentKey('RS256');
    const fromA = await m2mToken(a);
    const fromB = await m2mToken(b);
    t.is(kidOf(fromA), leaked.kid);
    t.is(kidOf(fromB), leaked.kid);
    t.is((await introspect(base(a), m2m, fromA)).json.active, true);

    const rotated = await a.store.keyRing.rotate(true);
    await ring();
    t.false(rotated.keys.some((k) => k.kid === leaked.kid || k.kid === leakedRsa.kid));
    const newKid = rotated.keys.find((k) => k.alg === AT_ALG && k.status === 'current')?.kid as string;

    t.true(
      await eventually(async () => {
        const [kidsA, kidsB] = [await jwksKids(a), await jwksKids(b)];
        return [leaked.kid, leakedRsa.kid].every((kid) => !kidsA.includes(kid) && !kidsB.includes(kid));
      }),
      'the leaked keys are gone from both JWKS within 5 s',
    );
    t.true(await bothSignWith(newKid));
    for (const token of [fromA, fromB])
      for (const server of [a, b]) {
        const r = await introspect(base(server), m2m, token);
        t.is(r.status, 200, r.text);
        t.is(r.json.active, false);
      }
    const fresh = await freshResourceServer();
    t.is((await report(fromA, fresh)).status, 401);
    t.is((await report(await m2mToken(b), fresh)).status, 200);
  },
);

test.serial('no private key material in the clear in Redis or in KEYS_DIR', async (t) => {
  await ring();
  t.true(privateValues.size >= 8, `collected ${privateValues.size} private values`);
  const dumps = { redis: await dumpPrefix(redis, prefix), keysDir: dumpFolder(secrets.KEYS_DIR) };
  t.true(dumps.redis.length > 0);
  for (const [where, dump] of Object.entries(dumps)) {
    t.false(dump.includes('"d":"'), `${where}: a "d" JWK member`);
    t.false(/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(dump), `${where}: a PEM private key`);
    t.false(dump.includes('PRIVATE KEY'), `${where}: PEM text`);
    for (const value of privateValues) t.false(dump.includes(value), `${where}: a private key value`);
  }
});

/** The instance's key ring read through a clock `aheadSeconds` in the future. */
const ringLater = (server: RunningAuthServer, aheadSeconds: number) =>
  new KeyRingStore(server.store.kv, server.store.keys, server.store.box, server.store.feed, {
    algs: async () => families(server.config.accessTokenAlg, await server.store.resources.namedAlgs()),
    maxTokenLifetimeSeconds: MAX_TOKEN_LIFETIME_SECONDS,
    now: () => new Date(Date.now() + aheadSeconds * 1000),
    tokens: server.store.jwtTokens,
  });

test.serial(
  'KEY_ROTATION_INTERVAL: of two concurrent callers of rotateIfDue, exactly one rotates',
  async (t) => {
    for (let round = 0; round < 2; round++) {
      const before = await ring();
      const wasCurrent = before.keys.filter((k) => k.status === 'current').map((k) => k.kid);
      t.false(await a.store.keyRing.rotateIfDue(3600), 'not due yet');
      // An hour after the last rotation, both instances find the next one due at the same moment.
      const later = 3600 * (round + 1);
      const results = await Promise.all([
        ringLater(a, later).rotateIfDue(3600),
        ringLater(b, later).rotateIfDue(3600),
      ]);
      t.is(results.filter(Boolean).length, 1, `round ${round}: ${results}`);
      const after = await ring();
      for (const alg of [AT_ALG, 'RS256']) {
        t.is(after.keys.filter((k) => k.alg === alg && k.status === 'current').length, 1);
        t.is(after.keys.filter((k) => k.alg === alg && k.status === 'next').length, 1);
      }
      for (const kid of wasCurrent) t.is(after.keys.find((k) => k.kid === kid)?.status, 'retired');
      t.is(after.keys.length, before.keys.length + 2, 'one rotation: one new next key per family');
    }
  },
);

test.serial(
  'issue 9 finding 13: after `keys rotate --now` a running RS refuses the dropped key within seconds (JWKS Cache-Control)',
  async (t) => {
    // The AS tells resource servers to keep its JWKS briefly, on every path variant its router accepts.
    for (const path of ['/jwks', '/JWKS', '/jwks/']) {
      const response = await fetch(`${base(a)}${path}`);
      t.is(response.status, 200, path);
      const maxAge = Number(/max-age=(\d+)/.exec(response.headers.get('cache-control') ?? '')?.[1]);
      t.true(maxAge > 0 && maxAge <= 5, `${path}: ${response.headers.get('cache-control')}`);
    }

    // A resource server as shipped, that has just fetched the JWKS and verified (and cached) a token.
    const running = await freshResourceServer();
    const leakedToken = await m2mToken(a);
    const leakedKid = kidOf(leakedToken);
    t.is((await report(leakedToken, running)).status, 200);
    t.is((await report(leakedToken, running)).status, 200, 'served again (from the verified-token cache)');

    const rotated = await runCli(['keys', 'rotate', '--now', '--json'], cliEnv);
    t.is(rotated.code, 0, rotated.stderr);
    const started = Date.now();
    t.true(
      await eventually(async () => (await report(leakedToken, running)).status === 401, 12_000, 100),
      'the running RS refuses the dropped key within 12 s (AS reload + JWKS max-age)',
    );
    t.log(`refused ${Date.now() - started} ms after the rotation command returned`);
    t.false((await jwksKids(a)).includes(leakedKid));
    const refused = await report(leakedToken, running);
    t.is(refused.json.error, 'invalid_token');
    t.true(await bothSignWith(kidOf(await m2mToken(a))));
    t.is((await report(await m2mToken(b), running)).status, 200, 'tokens under the new key verify');
  },
);
