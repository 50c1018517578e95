import test from 'ava';
import { LOGIN_LIMITS } from '../../../src/authorization-server/rate-limit/limits.ts';
import { totpCode } from '../../../src/authorization-server/second-factor/totp.ts';
import { TotpFactor } from '../../../src/authorization-server/second-factor/totp-factor.ts';
import { Deployment, startClientSite, type TestUser } from '../../e2e/support/deployment.ts';
import { authorizationRequest, UserAgent } from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';
import { type MovableClock, movableClock } from '../../support/clock.ts';

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

async function twoInstances(name: string, env: Record<string, string> = {}, clock?: MovableClock) {
  const deployment = await Deployment.create(name);
  deployments.push(deployment);
  const a = await deployment.start({ env, clock });
  const b = await deployment.start({ env, clock });
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
  const clock = movableClock();
  const { deployment, a, b } = await twoInstances('test-throttle-account', {}, clock);
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

  // The hold lifts by itself (backoff, not a lock): the throttle's clock moves past it.
  clock.advance(retryAfter * 1000 - 1500);
  t.is((await attempt(b, user.email, user.password)).status, 429, 'not before the wait is over');
  clock.advance(2000);
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

test('issue 9 #3: strangers failing for an account from many addresses never keep out the correct password', async (t) => {
  const clock = movableClock();
  const { deployment, a, b } = await twoInstances('test-throttle-lockout', { TRUST_PROXY: '1' }, clock);
  const user: TestUser = await deployment.addUser(a, 'targeted@example.com');
  const { account, accountFromIp } = LOGIN_LIMITS;
  // The per-account free failures, spread so that no address is held back by its own count.
  for (let i = 0; i < account.freeFailures / accountFromIp.freeFailures; i++) {
    for (let j = 0; j < accountFromIp.freeFailures; j++) {
      const r = await attempt(j % 2 ? a : b, user.email, `guess ${i}-${j}`, `203.0.113.${i + 1}`);
      t.is(r.status, 200, `stranger ${i} guess ${j}`);
    }
  }
  // The account is under attack now: a guess from a new address is slowed at once.
  const late = '203.0.113.200';
  const slowed = await attempt(b, user.email, 'late guess', late);
  t.is(slowed.status, 429);
  t.is(slowed.headers.get('retry-after'), String(account.firstDelaySeconds));
  t.is((await attempt(a, user.email, 'another guess', late)).status, 429, 'held: no password check');

  // The real person, from an address never used before: the correct password signs them in.
  const owner = '198.51.100.77';
  t.is((await attempt(a, user.email, user.password, owner)).status, 303, 'the owner signs in');
  // The owner's address keeps its free failures (a typo is just a typo).
  t.is((await attempt(b, user.email, 'a typo', owner)).status, 200);
  t.is((await attempt(a, user.email, user.password, owner)).status, 303);
  // The late stranger's hold lifts with time, and its next wrong guess holds it back twice as long.
  clock.advance(account.firstDelaySeconds * 1000);
  const again = await attempt(b, user.email, 'guess after the wait', late);
  t.is(again.status, 429);
  t.is(again.headers.get('retry-after'), String(account.firstDelaySeconds * 2));
});

test('issue 9 #14: per-address limits count an IPv6 /64 as one address', async (t) => {
  const { a } = await twoInstances('test-throttle-ipv6', { TRUST_PROXY: '1' });
  const { freeFailures } = LOGIN_LIMITS.accountFromIp;
  const statuses: number[] = [];
  for (let i = 0; i <= freeFailures; i++) {
    // Each guess from another address of the same /64, written in every IPv6 spelling.
    const from = [`2001:db8:7:9::${i + 1}`, `2001:0db8:0007:0009:${i + 1}:0:0:1`, `2001:DB8:7:9:ffff::${i}`][
      i % 3
    ];
    statuses.push((await attempt(a, 'v6-target@example.com', `guess ${i}`, from)).status);
  }
  t.deepEqual(statuses, [...Array(freeFailures).fill(200), 429]);
  // Another /64 is another address.
  t.is((await attempt(a, 'v6-target@example.com', 'guess', '2001:db8:7:a::1')).status, 200);
});

test('issue 9 #5: with TRUST_PROXY=1 a client-written X-Forwarded-For entry does not change its address', async (t) => {
  const { a } = await twoInstances('test-throttle-forged-xff', { TRUST_PROXY: '1' });
  const { freeFailures } = LOGIN_LIMITS.accountFromIp;
  const statuses: number[] = [];
  for (let i = 0; i <= freeFailures; i++) {
    // The client forges a new leftmost entry each time; our proxy appends what it saw: 192.0.2.9.
    statuses.push(
      (await attempt(a, 'xff-target@example.com', `guess ${i}`, `198.51.100.${i + 1}, 192.0.2.9`)).status,
    );
  }
  t.deepEqual(statuses, [...Array(freeFailures).fill(200), 429]);
  t.is(
    (await attempt(a, 'xff-target@example.com', 'guess', '192.0.2.10')).status,
    200,
    'another real address',
  );
});

test('a right password at the edge of the backoff does not hold back its own second factor; strangers stay held', async (t) => {
  const clock = movableClock();
  const { deployment, a, b } = await twoInstances('test-throttle-edge', { TRUST_PROXY: '1' }, clock);
  const user: TestUser = await deployment.addUser(a, 'edge@example.com');
  const { secret } = await new TotpFactor(a.store).enrolByEmail(user.email);
  const { freeFailures, firstDelaySeconds } = LOGIN_LIMITS.accountFromIp;
  const owner = '198.51.100.40';
  const stranger = '203.0.113.40';

  // The owner mistypes past the free failures; the one after them holds this address back 30 s.
  for (let i = 0; i < freeFailures; i++)
    t.is((await attempt(i % 2 ? a : b, user.email, `typo ${i}`, owner)).status, 200);
  t.is((await attempt(a, user.email, 'one typo too many', owner)).status, 429);
  clock.advance(firstDelaySeconds * 1000);

  // A stranger elsewhere guesses past the free failures too, and is held back.
  for (let i = 0; i < freeFailures; i++) await attempt(a, user.email, `guess ${i}`, stranger);
  t.is((await attempt(b, user.email, 'guess again', stranger)).status, 429);

  // The owner's hold has run out. The right password is reserved as the next failure (with the
  // longer hold that would leave) and given back: its own reservation must not hold back the code.
  const agent = new UserAgent({ forwardedFor: owner });
  const { url } = authorizationRequest(a.issuer, {
    client_id: 'throttle-app',
    redirect_uri: `${site.origin}/callback`,
    scope: 'openid',
  });
  const start = await agent.get(url);
  const page = new URL(start.headers.get('location') as string, a.issuer).href;
  const login = await agent.postForm(`${page}/login`, { email: user.email, password: user.password });
  t.is(login.status, 303, 'the right password is checked and accepted');
  const codePage = await agent.get(new URL(login.headers.get('location') as string, page).href);
  t.is(codePage.status, 200);
  const code = await agent.postForm(`${page}/second-factor`, { code: totpCode(secret, clock()) });
  t.is(code.status, 303, 'the second factor is checked, not refused with 429');
  t.is(code.headers.get('retry-after'), null);

  // The stranger's failures still hold, even with the right password.
  const held = await attempt(b, user.email, user.password, stranger);
  t.is(held.status, 429);
  t.true(Number(held.headers.get('retry-after')) > 0);
});
