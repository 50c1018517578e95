import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import Koa from 'koa';
import { type BearerAuthOptions, createBearerAuth } from '../../src/resource-server/auth/index.ts';
import { bearer, call, type Served, serve } from './fixtures/serve.ts';
import { startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

// These tests switch the fixture on and off, so they run one at a time.
let issuer: TestIssuer;
const servers: Served[] = [];

test.before(async () => {
  issuer = await startTestIssuer();
});

test.after.always(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await issuer?.close();
});

async function protectedApi(options: Partial<BearerAuthOptions> = {}): Promise<Served> {
  const auth = createBearerAuth({
    issuer: issuer.issuer,
    audience: issuer.audience,
    jwksCooldownSeconds: 0,
    discoveryRetrySeconds: 0,
    ...options,
  });
  const app = new Koa();
  app.use(auth.protect({ scope: 'things:read' }));
  app.use((ctx) => {
    ctx.body = { ok: true };
  });
  const served = await serve(app);
  servers.push(served);
  return served;
}

function assertUnavailable(t: import('ava').ExecutionContext, response: { status: number; body: unknown }) {
  t.is(response.status, 503);
  t.like(response.body, { error: 'temporarily_unavailable' });
}

test.serial(
  'AS down at start: 503 temporarily_unavailable, then service without restart once it is back',
  async (t) => {
    const api = await protectedApi();
    const token = await issuer.userToken('alice', 'things:read');
    issuer.setAvailable(false);
    try {
      assertUnavailable(t, await call(api.url, { headers: bearer(token) }));
      assertUnavailable(t, await call(api.url, { headers: bearer(token) }));
    } finally {
      issuer.setAvailable(true);
    }
    t.is((await call(api.url, { headers: bearer(token) })).status, 200);
  },
);

test.serial(
  'an AS that refuses connections gives 503, and garbage is still refused without asking it',
  async (t) => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const api = await protectedApi({ issuer: `http://127.0.0.1:${port}` });
    assertUnavailable(
      t,
      await call(api.url, { headers: bearer(await issuer.userToken('alice', 'things:read')) }),
    );
    t.is((await call(api.url, { headers: bearer('garbage') })).status, 401);
    t.is((await call(api.url)).status, 401);
  },
);

test.serial('after a failed discovery the AS is not asked again before the retry delay', async (t) => {
  const api = await protectedApi({ discoveryRetrySeconds: 60 });
  const token = await issuer.userToken('alice', 'things:read');
  const discoveryHits = () => issuer.hits.get('/.well-known/openid-configuration') ?? 0;
  issuer.setAvailable(false);
  try {
    assertUnavailable(t, await call(api.url, { headers: bearer(token) }));
  } finally {
    issuer.setAvailable(true);
  }
  const before = discoveryHits();
  assertUnavailable(t, await call(api.url, { headers: bearer(token) }));
  t.is(discoveryHits(), before);
});

test.serial('OIDC Discovery §4.3: a document naming another issuer is not trusted', async (t) => {
  const api = await protectedApi();
  issuer.setDiscoveryIssuer('https://impostor.test');
  try {
    assertUnavailable(
      t,
      await call(api.url, { headers: bearer(await issuer.userToken('alice', 'things:read')) }),
    );
  } finally {
    issuer.setDiscoveryIssuer(undefined);
  }
});

test.serial(
  'AS down after start: cached keys keep working, an unknown key gives 503 rather than 401',
  async (t) => {
    const api = await protectedApi();
    const token = await issuer.userToken('alice', 'things:read');
    t.is((await call(api.url, { headers: bearer(token) })).status, 200);

    const next = await issuer.rotate();
    issuer.setAvailable(false);
    try {
      t.is((await call(api.url, { headers: bearer(token) })).status, 200);
      const signedWithNewKey = await issuer.userToken('alice', 'things:read', { key: next });
      assertUnavailable(t, await call(api.url, { headers: bearer(signedWithNewKey) }));
    } finally {
      issuer.setAvailable(true);
    }
  },
);
