import test from 'ava';
import { LOGIN_LIMITS } from '../../src/authorization-server/rate-limit/limits.ts';
import { Deployment, startClientSite, type TestUser } from '../e2e/support/deployment.ts';
import { authorizationRequest, UserAgent } from '../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../support/auth-server.ts';

/** Brute-force protection: failures counted in Redis, so every instance enforces one budget. */
let site: Awaited<ReturnType<typeof startClientSite>>;
const deployments: Deployment[] = [];

test.before(async () => {
  site = await startClientSite();
});

test.after.always(async () => {
  await site?.close();
  await Promise.allSettled(deployments.map((d) => d.cleanup()));
});

async function twoInstances(name: string, env: Record<string, string> = {}) {
  const deployment = await Deployment.create(name);
  deployments.push(deployment);
  const a = await deployment.start({ env });
  const b = await deployment.start({ env });
  await a.store.clients.add({
    id: 'throttle-app',
    grants: ['authorization_code'],
    scope: ['openid'],
    resources: [],
    redirectUris: [`${site.origin}/callback`],
    postLogoutRedirectUris: [],
    authMethod: 'none',
  });
  return { deployment, a, b };
}

/** Opens a login page on an instance and posts credentials to it. */
async function attempt(
  server: RunningAuthServer,
  email: string,
  password: string,
  from?: string,
): Promise<Response> {
  const agent = new UserAgent({ forwardedFor: from });
  const { url } = authorizationRequest(server.issuer, {
    client_id: 'throttle-app',
    redirect_uri: `${site.origin}/callback`,
    scope: 'openid',
  });
  const start = await agent.get(url);
  const page = new URL(start.headers.get('location') as string, server.issuer).href;
  return agent.postForm(`${page}/login`, { email, password });
}

test('failed logins for one account are throttled across two instances, with Retry-After', async (t) => {
  const { deployment, a, b } = await twoInstances('test-throttle-account');
  const user: TestUser = await deployment.addUser(a, 'victim@example.com');
  const { freeFailures, firstDelaySeconds } = LOGIN_LIMITS.accountFromIp;

  for (let i = 0; i < freeFailures; i++) {
    const server = i % 2 === 0 ? a : b;
    t.is((await attempt(server, user.email, `wrong password ${i}`)).status, 200);
  }
  // The next failure, on either instance, starts the backoff.
  const throttled = await attempt(b, user.email, 'wrong password again');
  t.is(throttled.status, 429);
  t.is(throttled.headers.get('retry-after'), String(firstDelaySeconds));
  t.regex(await throttled.text(), /role="alert"[\s\S]*try again in 30 seconds/);

  // Held back on the other instance too, even with the right password: no argon2 work, no sign-in.
  const meanwhile = await attempt(a, user.email, user.password);
  t.is(meanwhile.status, 429);
  const retryAfter = Number(meanwhile.headers.get('retry-after'));
  t.true(retryAfter > 0 && retryAfter <= firstDelaySeconds);

  // The hold lifts by itself (backoff, not a lock): shown here by letting it expire in Redis.
  for (const key of await deployment.keys('rate-limit:login-account-ip:hold*'))
    await deployment.redis.del(key);
  const after = await attempt(b, user.email, user.password);
  t.is(after.status, 303, 'the right password works once the wait is over');
});

test('unknown accounts are throttled exactly like real ones', async (t) => {
  const { a } = await twoInstances('test-throttle-unknown');
  const statuses: number[] = [];
  for (let i = 0; i <= LOGIN_LIMITS.accountFromIp.freeFailures; i++) {
    statuses.push((await attempt(a, 'ghost@example.com', `wrong password ${i}`)).status);
  }
  t.deepEqual(statuses, [...Array(LOGIN_LIMITS.accountFromIp.freeFailures).fill(200), 429]);
});

test('one client IP spraying many accounts is throttled across instances', async (t) => {
  const { a, b } = await twoInstances('test-throttle-ip');
  const { freeFailures, firstDelaySeconds } = LOGIN_LIMITS.ip;
  for (let i = 0; i < freeFailures; i++) {
    const server = i % 2 === 0 ? a : b;
    t.is((await attempt(server, `sprayed-${i}@example.com`, 'a guessed password')).status, 200);
  }
  const throttled = await attempt(a, 'one-more@example.com', 'a guessed password');
  t.is(throttled.status, 429);
  t.is(throttled.headers.get('retry-after'), String(firstDelaySeconds));
  t.regex(await throttled.text(), /try again in 1 minute/);
  t.is((await attempt(b, 'yet-another@example.com', 'a guessed password')).status, 429);
});

test('a stranger failing for an account elsewhere does not hold the real person back', async (t) => {
  // TRUST_PROXY lets the test speak for two addresses through X-Forwarded-For (a header only: all
  // traffic stays on loopback).
  const { deployment, a, b } = await twoInstances('test-throttle-stranger', { TRUST_PROXY: 'true' });
  const user: TestUser = await deployment.addUser(a, 'owner@example.com');
  const stranger = '203.0.113.50';
  for (let i = 0; i <= LOGIN_LIMITS.accountFromIp.freeFailures; i++)
    await attempt(a, user.email, `guess ${i}`, stranger);
  t.is((await attempt(b, user.email, 'guess again', stranger)).status, 429, 'the stranger is held back');
  t.is((await attempt(b, user.email, user.password, '198.51.100.20')).status, 303, 'the owner signs in');
});
