import argon2 from 'argon2';
import test from 'ava';
import { LOGIN_LIMITS } from '../../../src/authorization-server/rate-limit/limits.ts';
import {
  hashPassword,
  PASSWORD_HASH_CONCURRENCY,
  PASSWORD_HASH_QUEUE,
  verifyPasswordHash,
} from '../../../src/authorization-server/storage/password-hasher.ts';
import { API, Deployment, startClientSite } from '../../e2e/support/deployment.ts';
import { authorizationRequest, UserAgent } from '../../e2e/support/user-agent.ts';
import { clientCredentialsToken } from '../../integration/support/harness.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';

/**
 * How many password hashes the login page runs, observed by counting argon2 verifications in this
 * process (the server runs in-process): parallel posts get no more checks than the backoff allows
 * (issue 9 #4), and a burst is capped per process with a short queue and a quick 503 (issue 9 #7).
 * Serial: the counts are per process.
 */
let site: Awaited<ReturnType<typeof startClientSite>>;
let deployment: Deployment;
let server: RunningAuthServer;
let machine: { id: string; secret: string };

const verifications = { started: 0, inFlight: 0, maxInFlight: 0 };
/** While set, every verification waits for it: the test holds the hash slots as long as it needs. */
let holdVerifications: Promise<void> | undefined;
const originalVerify = argon2.verify;

test.before(async () => {
  site = await startClientSite();
  deployment = await Deployment.create('test-password-checks');
  server = await deployment.start({ env: { TRUST_PROXY: '1', TOKEN_RATE_LIMIT: '0' } });
  await deployment.addApi(server);
  await server.store.clients.add({
    id: 'checks-app',
    grants: ['authorization_code'],
    scope: ['openid'],
    resources: [],
    redirectUris: [`${site.origin}/callback`],
    postLogoutRedirectUris: [],
    authMethod: 'none',
  });
  const created = await server.store.clients.add({
    id: 'checks-machine',
    grants: ['client_credentials'],
    scope: ['policies:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  machine = { id: 'checks-machine', secret: String(created.client_secret) };
  argon2.verify = (async (...args: Parameters<typeof argon2.verify>) => {
    verifications.started += 1;
    verifications.inFlight += 1;
    verifications.maxInFlight = Math.max(verifications.maxInFlight, verifications.inFlight);
    try {
      await holdVerifications;
      return await originalVerify(...args);
    } finally {
      verifications.inFlight -= 1;
    }
  }) as typeof argon2.verify;
});

test.after.always(async () => {
  argon2.verify = originalVerify;
  await site?.close();
  await deployment?.cleanup();
});

/** A login form, opened from one address: its post URL and the browser that holds its cookie. */
async function openLoginForm(from: string) {
  const agent = new UserAgent({ forwardedFor: from });
  const { url } = authorizationRequest(server.issuer, {
    client_id: 'checks-app',
    redirect_uri: `${site.origin}/callback`,
    scope: 'openid',
  });
  const start = await agent.get(url);
  await start.body?.cancel();
  const page = new URL(start.headers.get('location') as string, server.issuer).href;
  return { agent, action: `${page}/login` };
}

test.serial(
  'issue 9 #4: 40 parallel posts of one login form get no more password checks than the backoff allows',
  async (t) => {
    const user = await deployment.addUser(server, 'raced@example.com');
    const form = await openLoginForm('192.0.2.44');
    verifications.started = 0;
    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        form.agent.postForm(form.action, { email: user.email, password: `wrong password ${i}` }),
      ),
    );
    await Promise.all(responses.map((r) => r.body?.cancel()));
    const { freeFailures } = LOGIN_LIMITS.accountFromIp;
    t.is(verifications.started, freeFailures + 1, 'the free failures, then the one that starts the backoff');
    const statuses = responses.map((r) => r.status).sort();
    t.deepEqual(statuses, [...Array(freeFailures).fill(200), ...Array(40 - freeFailures).fill(429)]);
    t.true(responses.filter((r) => r.status === 429).every((r) => Number(r.headers.get('retry-after')) > 0));
  },
);

test.serial(
  'issue 9 #7: a burst of logins runs at most the capped hashes at once, and /token still serves',
  async (t) => {
    const burst = 12;
    const forms = await Promise.all(
      Array.from({ length: burst }, (_, i) => openLoginForm(`198.51.100.${i + 1}`)),
    );
    verifications.started = 0;
    verifications.maxInFlight = 0;
    const [responses, token] = await Promise.all([
      Promise.all(
        forms.map((form, i) =>
          form.agent.postForm(form.action, { email: `burst-${i}@example.com`, password: 'a wrong password' }),
        ),
      ),
      clientCredentialsToken(server.issuer, machine, { scope: 'policies:read' }),
    ]);
    await Promise.all(responses.map((r) => r.body?.cancel()));
    t.truthy(token, 'the token endpoint answered during the burst');
    t.true(
      verifications.maxInFlight <= PASSWORD_HASH_CONCURRENCY,
      `at most ${PASSWORD_HASH_CONCURRENCY} hashes at once, saw ${verifications.maxInFlight}`,
    );
    t.deepEqual(
      responses.map((r) => r.status),
      Array(burst).fill(200),
    );
    t.is(verifications.started, burst);
  },
);

test.serial(
  'issue 9 #7: with every hash slot and queue place taken, a login gets 503 with Retry-After at once, and runs no hash',
  async (t) => {
    const user = await deployment.addUser(server, 'busy@example.com');
    const form = await openLoginForm('198.51.100.200');
    const hash = await hashPassword('the filler password');
    verifications.started = 0;
    let release = () => {};
    holdVerifications = new Promise<void>((resolve) => {
      release = resolve;
    });
    const fillers = Array.from({ length: PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE }, () =>
      verifyPasswordHash(hash, 'wrong'),
    );
    const refused = await form.agent.postForm(form.action, { email: user.email, password: user.password });
    holdVerifications = undefined;
    release();
    t.is(refused.status, 503);
    t.is(refused.headers.get('retry-after'), '1');
    t.regex(await refused.text(), /Try again in a moment/);
    await Promise.all(fillers);
    t.is(verifications.started, fillers.length, 'the refused login ran no hash');
    // The same form signs the person in once the queue has drained.
    const again = await form.agent.postForm(form.action, { email: user.email, password: user.password });
    await again.body?.cancel();
    t.is(again.status, 303);
  },
);
