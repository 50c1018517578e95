import test from 'ava';
import { buildResourceServerApp } from '../../src/resource-server/app.ts';
import { bearer, call, type Served, serve, silentLogger, testConfig } from './fixtures/serve.ts';
import { generateSigningKey, startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

let issuer: TestIssuer;
const servers: Served[] = [];

test.before(async () => {
  issuer = await startTestIssuer();
});

test.after.always(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await issuer?.close();
});

async function startApi(env: Record<string, string> = {}): Promise<Served> {
  const served = await serve(
    buildResourceServerApp({ config: testConfig(issuer, env), logger: silentLogger }),
  );
  servers.push(served);
  return served;
}

const jwksHits = () => issuer.hits.get('/jwks') ?? 0;

test.serial(
  'a key published and used after start is accepted, and tokens under the old key still verify',
  async (t) => {
    const api = await startApi();
    const list = (token: string) => call(`${api.url}/policies`, { headers: bearer(token) });

    const oldToken = await issuer.userToken('alice', 'policies:read');
    t.is((await list(oldToken)).status, 200);

    const next = await issuer.rotate();
    const newToken = await issuer.userToken('alice', 'policies:read');
    t.is(issuer.currentKey().kid, next.kid);
    t.is((await list(newToken)).status, 200);
    t.is((await list(oldToken)).status, 200);

    // Both keys are now cached: no further fetch for either.
    const hits = jwksHits();
    t.is((await list(oldToken)).status, 200);
    t.is((await list(newToken)).status, 200);
    t.is(jwksHits(), hits);
  },
);

test.serial(
  'unknown kids cannot make the resource server refetch the JWKS during the cooldown',
  async (t) => {
    const api = await startApi({ RS_JWKS_COOLDOWN_SECONDS: '60' });
    const list = (token: string) => call(`${api.url}/policies`, { headers: bearer(token) });
    t.is((await list(await issuer.userToken('alice', 'policies:read'))).status, 200);

    const hits = jwksHits();
    const stranger = await generateSigningKey();
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const forged = await issuer.userToken('alice', 'policies:read', { key: stranger });
      const response = await list(forged);
      t.is(response.status, 401);
      t.like(response.body, { error: 'invalid_token' });
    }
    t.is(jwksHits(), hits);
  },
);
