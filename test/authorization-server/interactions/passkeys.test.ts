import test from 'ava';
import { LOGIN_LIMITS } from '../../../src/authorization-server/rate-limit/limits.ts';
import { LoginThrottle } from '../../../src/authorization-server/rate-limit/login-throttle.ts';
import { Deployment, startClientSite, type TestUser } from '../../e2e/support/deployment.ts';
import { authorizationRequest, UserAgent } from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';
import { SoftAuthenticator } from '../../support/soft-authenticator.ts';

/**
 * Passkeys over plain HTTP, with a software authenticator: every passkey check is reserved in the
 * login backoff before it runs (as the second factor per account and address, passwordless per
 * address), a response without a live challenge is no guess, and sign-ins land in the audit trail.
 * TRUST_PROXY lets each test speak from its own address (X-Forwarded-For, loopback only).
 */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;

// Serial: tests here sign in in parallel bursts; side by side they would fill the per-process
// password-hash queue (issue 9 #7) and get each other 503s.
test.before(async () => {
  deployment = await Deployment.create('test-passkeys');
  server = await deployment.start({ env: { TRUST_PROXY: '1' } });
  site = await startClientSite();
  await server.store.clients.add({
    id: 'passkey-app',
    grants: ['authorization_code'],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [`${site.origin}/callback`],
    postLogoutRedirectUris: [],
    authMethod: 'none',
    firstParty: true,
  });
});

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
});

/** A user whose only second factor is a passkey held by a software authenticator. */
async function passkeyUser(email: string): Promise<TestUser & { authenticator: SoftAuthenticator }> {
  const user = await deployment.addUser(server, email);
  const authenticator = new SoftAuthenticator(server.issuer);
  await server.store.passkeys.add(authenticator.passkeyFor(user.sub));
  return { ...user, authenticator };
}

/** A new sign-in at the login page: the agent and the interaction's URL. */
async function atLoginPage(from: string) {
  const agent = new UserAgent({ forwardedFor: from });
  const { url } = authorizationRequest(server.issuer, {
    client_id: 'passkey-app',
    redirect_uri: `${site.origin}/callback`,
    scope: 'openid email',
  });
  const start = await agent.get(url);
  const pageUrl = new URL(start.headers.get('location') as string, server.issuer).href;
  return { agent, pageUrl };
}

/** Past the password: the sign-in waits for the passkey as its second factor. */
async function atPasskeyStep(user: TestUser, from: string) {
  const { agent, pageUrl } = await atLoginPage(from);
  const login = await agent.postForm(`${pageUrl}/login`, { email: user.email, password: user.password });
  if (login.status !== 303) throw new Error(`login answered ${login.status}`);
  return { agent, pageUrl };
}

async function challengeFor(agent: UserAgent, pageUrl: string): Promise<string> {
  const options = await agent.postRaw(`${pageUrl}/passkey/options`, '{}', 'application/json');
  if (options.status !== 200) throw new Error(`options answered ${options.status}`);
  return ((await options.json()) as { challenge: string }).challenge;
}

function postAssertion(agent: UserAgent, pageUrl: string, assertion: unknown): Promise<Response> {
  return agent.postRaw(`${pageUrl}/passkey`, JSON.stringify(assertion), 'application/json');
}

/** The audit trail's sign-in events for an account, once everything recorded so far is in. */
async function signInEvents(sub: string) {
  // The trail appends in order: once a marker recorded now is in, every earlier event is too.
  await server.store.audit.record({ actor: 'test', action: 'test.marker', source: 'test', outcome: 'ok' });
  return (await server.store.audit.recent(1000)).filter(
    (e) => e.action.startsWith('signin.') && e.target === sub,
  );
}

test.serial(
  'issue 9 #4: 20 parallel wrong passkey assertions as the second factor get no more checks than the backoff allows',
  async (t) => {
    const user = await passkeyUser('passkey.parallel@example.com');
    const from = '198.51.100.61';
    const { freeFailures } = LOGIN_LIMITS.accountFromIp;
    // Twenty sign-ins past the password, each with its own challenge.
    const steps = [];
    for (let i = 0; i < 20; i++) {
      const step = await atPasskeyStep(user, from);
      steps.push({ ...step, challenge: await challengeFor(step.agent, step.pageUrl) });
    }
    const answers = await Promise.all(
      steps.map(({ agent, pageUrl, challenge }) =>
        postAssertion(agent, pageUrl, user.authenticator.assert(challenge, { forged: true })),
      ),
    );
    const statuses = answers.map((r) => r.status);
    const refusedAfterCheck = statuses.filter((s) => s === 400).length;
    t.true(
      refusedAfterCheck <= freeFailures,
      `${refusedAfterCheck} wrong assertions answered without a hold`,
    );
    t.is(statuses.filter((s) => s !== 400 && s !== 429).length, 0, statuses.join(' '));
    t.true(answers.filter((r) => r.status === 429).every((r) => Number(r.headers.get('retry-after')) > 0));
    // Every assertion really checked and found wrong is a `signin.failure`: the free failures, then
    // the one that starts the hold; no other assertion is ever looked at.
    const failures = (await signInEvents(user.sub)).filter((e) => e.action === 'signin.failure').length;
    t.true(failures >= 1 && failures <= freeFailures + 1, `${failures} of 20 assertions checked`);

    // While held, the password step waits too, so no further passkey is checked behind it.
    await t.throwsAsync(atPasskeyStep(user, from), { message: /login answered 429/ });
    // A passwordless passkey names no account before it is checked: only the address's own
    // counter (which these failures did not fill) applies, so the real person can still use it.
    const passwordless = await atLoginPage(from);
    const challenge = await challengeFor(passwordless.agent, passwordless.pageUrl);
    const signedIn = await postAssertion(
      passwordless.agent,
      passwordless.pageUrl,
      user.authenticator.assert(challenge),
    );
    t.is(signedIn.status, 200);
  },
);

test.serial(
  'a passkey response without a live challenge is no guess: a clear 400, and nothing is charged',
  async (t) => {
    const user = await passkeyUser('passkey.no-challenge@example.com');
    const from = '198.51.100.62';
    const { agent, pageUrl } = await atPasskeyStep(user, from);
    // More responses than the free failures, and no challenge was ever asked for.
    for (let i = 0; i <= LOGIN_LIMITS.accountFromIp.freeFailures + 2; i++) {
      const response = await postAssertion(agent, pageUrl, user.authenticator.assert('not-a-challenge'));
      t.is(response.status, 400, `response ${i}`);
      t.like(await response.json(), { error: 'passkey_no_challenge' });
    }
    // A challenge is used once: the second answer to it finds none either.
    const challenge = await challengeFor(agent, pageUrl);
    const used = await postAssertion(agent, pageUrl, user.authenticator.assert(challenge, { forged: true }));
    t.like(await used.json(), { error: 'passkey_invalid' });
    const again = await postAssertion(agent, pageUrl, user.authenticator.assert(challenge));
    t.like(await again.json(), { error: 'passkey_no_challenge' });
    // None of them held the sign-in back: the passkey signs in.
    const signedIn = await postAssertion(
      agent,
      pageUrl,
      user.authenticator.assert(await challengeFor(agent, pageUrl)),
    );
    t.is(signedIn.status, 200);
    t.truthy(((await signedIn.json()) as { location?: string }).location);
    const events = await signInEvents(user.sub);
    t.deepEqual(
      events.map((e) => [e.action, e.details?.method]),
      [
        ['signin.success', 'pwd hwk'],
        ['signin.failure', 'pwd webauthn'],
      ],
      'newest first: only the checked wrong assertion is a failure',
    );
  },
);

test.serial(
  'passwordless passkey sign-in is audited, and throttled per address in the password backoff',
  async (t) => {
    const user = await passkeyUser('passkey.passwordless@example.com');
    // Passwordless: no password step, so the passkey names the account.
    const first = await atLoginPage('198.51.100.63');
    const signedIn = await postAssertion(
      first.agent,
      first.pageUrl,
      user.authenticator.assert(await challengeFor(first.agent, first.pageUrl)),
    );
    t.is(signedIn.status, 200);
    const wrong = await atLoginPage('198.51.100.64');
    const refused = await postAssertion(
      wrong.agent,
      wrong.pageUrl,
      user.authenticator.assert(await challengeFor(wrong.agent, wrong.pageUrl), { forged: true }),
    );
    t.is(refused.status, 400);
    t.deepEqual(
      (await signInEvents(user.sub)).map((e) => [e.action, e.details?.method]),
      [
        ['signin.failure', 'webauthn'],
        ['signin.success', 'hwk'],
      ],
    );

    // An address that sprayed wrong passwords over many accounts has used up its free failures...
    const sprayer = '198.51.100.65';
    const throttle = new LoginThrottle(server.store);
    for (let i = 0; i < LOGIN_LIMITS.ip.freeFailures; i++) {
      const reservation = await throttle.reserve({ email: `sprayed-${i}@example.com`, ip: sprayer });
      if (!reservation.allowed) throw new Error(`spray ${i} was held back`);
      await reservation.failed();
    }
    // ... so its next wrong passkey starts the address's hold, and then even the right one waits.
    const next = await atLoginPage(sprayer);
    const guess = await postAssertion(
      next.agent,
      next.pageUrl,
      user.authenticator.assert(await challengeFor(next.agent, next.pageUrl), { forged: true }),
    );
    t.is(guess.status, 429);
    t.is(guess.headers.get('retry-after'), String(LOGIN_LIMITS.ip.firstDelaySeconds));
    const held = await postAssertion(
      next.agent,
      next.pageUrl,
      user.authenticator.assert(await challengeFor(next.agent, next.pageUrl)),
    );
    t.is(held.status, 429);
    t.like(await held.json(), { error: 'too_many_attempts' });
    t.is((await signInEvents(user.sub))[0]?.action, 'signin.throttled');
  },
);
