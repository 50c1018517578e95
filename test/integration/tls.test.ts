import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { Redis } from 'ioredis';
import { HSTS_MAX_AGE_SECONDS } from '../../src/shared/strict-transport-security.ts';
import { freePort, type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';
import { httpsRequest, makeTestCa, type TestCa } from '../support/tls.ts';

// Encryption in transit end to end: the authorization server and the resource server each serve
// HTTPS with a certificate from a private CA made here, and the resource server fetches discovery
// and the JWKS over TLS trusting that CA through NODE_EXTRA_CA_CERTS, as the README says.
const RS_MAIN = fileURLToPath(new URL('../../src/resource-server/main.ts', import.meta.url));
const prefix = testPrefix('it-tls');
let ca: TestCa;
let redis: Redis;
let as: RunningAuthServer;
const children: ChildProcess[] = [];

test.before(async () => {
  ca = makeTestCa();
  redis = await connectRedis();
  const port = await freePort();
  as = await startAuthServer({
    prefix,
    secrets: testSecrets(),
    port,
    env: { ISSUER: `https://localhost:${port}`, TLS_CERT_FILE: ca.certFile, TLS_KEY_FILE: ca.keyFile },
  });
});
test.after.always(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await as?.close();
  await deletePrefix(redis, prefix);
  redis?.disconnect();
  ca?.remove();
});

test('the authorization server serves discovery over TLS with HSTS, and its URLs are https', async (t) => {
  const response = await httpsRequest(`${as.issuer}/.well-known/openid-configuration`, ca.ca);
  t.is(response.status, 200);
  t.is(response.headers['strict-transport-security'], `max-age=${HSTS_MAX_AGE_SECONDS}; includeSubDomains`);
  const metadata = JSON.parse(response.body) as { issuer: string; jwks_uri: string; token_endpoint: string };
  t.is(metadata.issuer, as.issuer);
  t.true(metadata.jwks_uri.startsWith('https://'));
  t.true(metadata.token_endpoint.startsWith('https://'));
});

test('the resource server, over TLS itself, verifies tokens with a JWKS fetched over TLS from a private CA', async (t) => {
  const rsPort = await freePort();
  const audience = `https://localhost:${rsPort}`;
  await as.store.resources.add({ uri: audience, scopes: ['reports:read'] });
  const client = await as.store.clients.add({
    id: 'tls-reporter',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [audience],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const basic = Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64');
  const issued = await httpsRequest(`${as.issuer}/token`, ca.ca, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=reports%3Aread',
  });
  t.is(issued.status, 200, issued.body);
  const { access_token: token } = JSON.parse(issued.body) as { access_token: string };

  const child = spawn(process.execPath, [RS_MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      RS_PORT: String(rsPort),
      ISSUER: as.issuer,
      TLS_CERT_FILE: ca.certFile,
      TLS_KEY_FILE: ca.keyFile,
      NODE_EXTRA_CA_CERTS: ca.caFile,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines: { msg?: string; port?: number; tls?: boolean }[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) =>
    lines.push(JSON.parse(line)),
  );
  const deadline = Date.now() + 50_000;
  while (!lines.some((line) => line.msg === 'resource server listening') && Date.now() < deadline) {
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.like(
    lines.find((line) => line.msg === 'resource server listening'),
    { port: rsPort, tls: true },
  );

  const report = await httpsRequest(`${audience}/reports/claims`, ca.ca, {
    headers: { authorization: `Bearer ${token}` },
  });
  t.is(report.status, 200, report.body);
  const refused = await httpsRequest(`${audience}/reports/claims`, ca.ca, {
    headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` },
  });
  t.is(refused.status, 401);
  child.kill('SIGTERM');
  await once(child, 'exit');
});
