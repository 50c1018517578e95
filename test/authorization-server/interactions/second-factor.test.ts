import test from 'ava';
import * as oidc from 'openid-client';
import { LOGIN_LIMITS } from '../../../src/authorization-server/rate-limit/limits.ts';
import { ACR } from '../../../src/authorization-server/second-factor/authentication-context.ts';
import { totpCode } from '../../../src/authorization-server/second-factor/totp.ts';
import { TotpFactor } from '../../../src/authorization-server/second-factor/totp-factor.ts';
import { Deployment, startClientSite, type TestUser } from '../../e2e/support/deployment.ts';
import { runAuthorization, UserAgent } from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';
import { dumpPrefix } from '../../support/redis.ts';

/**
 * TOTP as the second factor over plain HTTP (a browser with JavaScript off): codes computed from
 * the enrolled secret, a code works once, ±1 step of drift, recovery codes once each, wrong codes
 * in the password backoff, forced enrolment for acr_values and --require-mfa, step-up, prompt=login,
 * and amr/acr in ID tokens as openid-client validates them.
 */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let client: oidc.Configuration;
let strictClient: oidc.Configuration;
let redirectUri: string;

const STEP_MS = 30_000;
/** The server checks codes against this fixed time, so codes computed here never straddle a step. */
const NOW = Date.now();

// Serial: several tests sign in many times at once on purpose; side by side they would fill the
// per-process password-hash queue (issue 9 #7) and each other's sign-ins would get its 503.
test.before(async () => {
  deployment = await Deployment.create('test-mfa');
  server = await deployment.start({ clock: () => NOW });
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  const base = {
    grants: ['authorization_code' as const],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    firstParty: true,
  };
  const web = await server.store.clients.add({ id: 'mfa-web', ...base });
  const strict = await server.store.clients.add({ id: 'mfa-strict', ...base, requireMfa: true });
  const discover = (id: string, secret: string) =>
    oidc.discovery(new URL(server.issuer), id, undefined, oidc.ClientSecretBasic(secret), {
      execute: [oidc.allowInsecureRequests],
    });
  client = await discover('mfa-web', web.client_secret as string);
  strictClient = await discover('mfa-strict', strict.client_secret as string);
});

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
});

/** A user with an authenticator app enrolled the way `users totp enroll` does it. */
async function totpUser(email: string): Promise<TestUser & { secret: string; recoveryCodes: string[] }> {
  const user = await deployment.addUser(server, email);
  const enrolment = await new TotpFactor(server.store).enrolByEmail(email);
  return { ...user, secret: enrolment.secret, recoveryCodes: enrolment.recovery_codes };
}

function authorizationUrl(rp: oidc.Configuration, extra: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  return {
    verifier,
    state,
    nonce,
    url: async () =>
      oidc.buildAuthorizationUrl(rp, {
        redirect_uri: redirectUri,
        scope: 'openid email',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...extra,
      }).href,
  };
}

/** Signs in through every page and returns the validated ID token claims (openid-client). */
async function signIn(
  user: TestUser,
  options: {
    code?: () => string;
    rp?: oidc.Configuration;
    extra?: Record<string, string>;
    agent?: UserAgent;
  } = {},
) {
  const rp = options.rp ?? client;
  const request = authorizationUrl(rp, options.extra);
  const flow = await runAuthorization(options.agent ?? new UserAgent(), await request.url(), redirectUri, {
    credentials: user,
    secondFactor: options.code,
  });
  const tokens = await oidc.authorizationCodeGrant(rp, flow.callback, {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  return { claims: tokens.claims() as oidc.IDToken, pages: flow.pages };
}

/** Past the password to the code page: the agent and the code form's URL. */
async function atCodePage(user: TestUser, agent = new UserAgent()) {
  const request = authorizationUrl(client);
  let response = await agent.get(await request.url());
  const pageUrl = new URL(response.headers.get('location') as string, server.issuer).href;
  response = await agent.postForm(`${pageUrl}/login`, { email: user.email, password: user.password });
  if (response.status !== 303) throw new Error(`login answered ${response.status}`);
  const codePage = await agent.get(new URL(response.headers.get('location') as string, pageUrl).href);
  return { agent, pageUrl, codePage, html: await codePage.text(), codeUrl: `${pageUrl}/second-factor` };
}

test.serial(
  'after the password, a page with exactly one text input for the code; amr pwd+otp and the multi-factor acr',
  async (t) => {
    const user = await totpUser('totp.page@example.com');
    const { codePage, html } = await atCodePage(user);
    t.is(codePage.status, 200);
    const inputs = html.match(/<input\b[^>]*>/g) ?? [];
    t.is(inputs.length, 1, 'one input on the page');
    t.regex(inputs[0] as string, /type="text"/);
    t.regex(inputs[0] as string, /name="code"/);
    t.regex(inputs[0] as string, /autocomplete="one-time-code"/);
    t.regex(html, /<form method="post" action="\/interaction\/[^"]+\/second-factor"/);
    t.notRegex(html, /<script/i, 'works with JavaScript off');
    t.notRegex(codePage.headers.get('content-security-policy') ?? '', /unsafe-inline/);

    const { claims, pages } = await signIn(user, { code: () => totpCode(user.secret, NOW) });
    t.deepEqual(pages, ['login', 'second-factor']);
    t.is(claims.sub, user.sub);
    t.deepEqual(claims.amr, ['pwd', 'otp']);
    t.is(claims.acr, ACR.multiFactor);
  },
);

test.serial(
  'a password alone gives amr ["pwd"] and the password acr; discovery lists both acr values',
  async (t) => {
    const user = await deployment.addUser(server, 'password.only@example.com');
    const { claims, pages } = await signIn(user);
    t.deepEqual(pages, ['login']);
    t.deepEqual(claims.amr, ['pwd']);
    t.is(claims.acr, ACR.password);
    t.deepEqual(client.serverMetadata().acr_values_supported, [ACR.password, ACR.multiFactor]);
  },
);

test.serial('a code works once (replay refused), ±1 step of drift accepted, 2 steps refused', async (t) => {
  const user = await totpUser('totp.replay@example.com');
  const now = NOW;
  const previous = totpCode(user.secret, now - STEP_MS);

  // One step behind: accepted (a slow phone clock).
  t.deepEqual((await signIn(user, { code: () => previous })).claims.amr, ['pwd', 'otp']);

  // The same code again: refused, on the page, with a message and no redirect.
  const replay = await atCodePage(user);
  const refused = await replay.agent.postForm(replay.codeUrl, { code: previous });
  t.is(refused.status, 200);
  t.regex(await refused.text(), /role="alert"/);

  // Two steps away either side: refused.
  for (const offset of [-2 * STEP_MS, 2 * STEP_MS]) {
    const response = await replay.agent.postForm(replay.codeUrl, {
      code: totpCode(user.secret, now + offset),
    });
    t.is(response.status, 200, `offset ${offset / 1000}s`);
  }
  // One step ahead: accepted (a fast phone clock) on the same page.
  const ahead = await replay.agent.postForm(replay.codeUrl, { code: totpCode(user.secret, now + STEP_MS) });
  t.is(ahead.status, 303);
  // Now the current step is behind the last accepted one: refused too (codes only move forward).
  const late = await atCodePage(user);
  t.is((await late.agent.postForm(late.codeUrl, { code: totpCode(user.secret, now) })).status, 200);
});

test.serial('one code sent in parallel from many sign-ins is accepted exactly once', async (t) => {
  const user = await totpUser('totp.race@example.com');
  const pages = await Promise.all(Array.from({ length: 6 }, () => atCodePage(user)));
  const code = totpCode(user.secret, NOW);
  const answers = await Promise.all(pages.map((p) => p.agent.postForm(p.codeUrl, { code })));
  t.is(answers.filter((r) => r.status === 303).length, 1);
  // The rest are refused: the code page again, or 429 when the checks reserved in flight (the
  // accepted one's included, until it is given back) already filled the free failures.
  t.is(answers.filter((r) => r.status === 200 || r.status === 429).length, 5);
});

test.serial('a recovery code works once, in any case and without its dash', async (t) => {
  const user = await totpUser('totp.recovery@example.com');
  t.is(user.recoveryCodes.length, 10);
  t.is(new Set(user.recoveryCodes).size, 10);
  const code = user.recoveryCodes[3] as string;
  const { claims } = await signIn(user, { code: () => code.replace('-', '').toUpperCase() });
  t.deepEqual(claims.amr, ['pwd', 'otp']);

  const again = await atCodePage(user);
  const refused = await again.agent.postForm(again.codeUrl, { code });
  t.is(refused.status, 200);
  t.regex(await refused.text(), /role="alert"/);
  // Another one still works.
  t.is((await again.agent.postForm(again.codeUrl, { code: user.recoveryCodes[4] as string })).status, 303);
});

test.serial('wrong codes count in the password backoff, and the password does not reset it', async (t) => {
  const user = await totpUser('totp.backoff@example.com');
  const first = await atCodePage(user);
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++)
    statuses.push((await first.agent.postForm(first.codeUrl, { code: '000000' })).status);
  t.deepEqual(statuses, [200, 200, 200, 200]);
  // The right password again does not clear the failures (only a finished sign-in does) ...
  const second = await atCodePage(user);
  t.is((await second.agent.postForm(second.codeUrl, { code: '000000' })).status, 200);
  // ... so the sixth wrong code in a row is held back, with Retry-After.
  const held = await second.agent.postForm(second.codeUrl, { code: '000000' });
  t.is(held.status, 429);
  t.truthy(Number(held.headers.get('retry-after')) > 0);
  // While held, even the right code and the password page wait.
  t.is((await second.agent.postForm(second.codeUrl, { code: totpCode(user.secret, NOW) })).status, 429);
  await t.throwsAsync(atCodePage(user), { message: /login answered 429/ });
});

test.serial('issue 9 #4: parallel wrong codes get no more checks than the backoff allows', async (t) => {
  const user = await totpUser('totp.parallel@example.com');
  const { agent, codeUrl } = await atCodePage(user);
  const statuses = await Promise.all(
    Array.from({ length: 20 }, () => agent.postForm(codeUrl, { code: '000000' }).then((r) => r.status)),
  );
  const shown = statuses.filter((s) => s === 200).length;
  t.true(shown <= LOGIN_LIMITS.accountFromIp.freeFailures, `${shown} wrong codes answered without a hold`);
  t.is(statuses.filter((s) => s !== 200 && s !== 429).length, 0);
  // Every code really checked and found wrong is a `signin.failure` in the audit trail. The trail
  // appends in order, so once a marker recorded now is in, every earlier event is too.
  await server.store.audit.record({ actor: 'test', action: 'test.marker', source: 'test', outcome: 'ok' });
  const checked = (await server.store.audit.recent(1000)).filter(
    (e) => e.action === 'signin.failure' && e.target === user.sub,
  ).length;
  // Five free failures, then the one that starts the hold: no other guess is ever looked at.
  t.true(checked <= LOGIN_LIMITS.accountFromIp.freeFailures + 1, `${checked} of 20 codes checked`);
});

test.serial('a malformed or empty code is a message on the page, never a 5xx', async (t) => {
  const user = await totpUser('totp.malformed@example.com');
  const { agent, codeUrl } = await atCodePage(user);
  for (const code of ['', '   ', 'x'.repeat(5000), '12345', '1234567', '１２３４５６', '<script>']) {
    const response = await agent.postForm(codeUrl, { code });
    t.is(response.status, 200, JSON.stringify(code.slice(0, 10)));
  }
  const json = await agent.postRaw(codeUrl, '{"code":"123456"}', 'application/json');
  t.true(json.status >= 400 && json.status < 500);
  // Without the password step first, the code form is refused.
  const fresh = new UserAgent();
  const start = await fresh.get(await authorizationUrl(client).url());
  const pageUrl = new URL(start.headers.get('location') as string, server.issuer).href;
  const early = await fresh.postForm(`${pageUrl}/second-factor`, { code: '123456' });
  t.is(early.status, 400);
});

/** Follows a forced enrolment: the QR code and key page, a code, the recovery codes, continue. */
async function forcedEnrolment(
  t: import('ava').ExecutionContext,
  user: TestUser,
  rp: oidc.Configuration,
  extra: Record<string, string> = {},
) {
  const agent = new UserAgent();
  const request = authorizationUrl(rp, extra);
  let response = await agent.get(await request.url());
  const pageUrl = new URL(response.headers.get('location') as string, server.issuer).href;
  response = await agent.postForm(`${pageUrl}/login`, { email: user.email, password: user.password });
  t.is(response.status, 303);
  const enrolPage = await agent.get(new URL(response.headers.get('location') as string, pageUrl).href);
  const html = await enrolPage.text();
  t.is(enrolPage.status, 200);
  t.regex(html, /<svg[^>]*viewBox/, 'the QR code is inline SVG rendered on the server');
  t.notRegex(html, /<script/i);
  const secret = (/<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(html)?.[1] ?? '').replace(/ /g, '');
  t.regex(secret, /^[A-Z2-7]{32}$/);
  t.is(html.match(/<input\b/g)?.length, 1);

  const wrong = await agent.postForm(`${pageUrl}/totp-enrolment`, { code: '000000' });
  t.is(wrong.status, 200);
  t.regex(await wrong.text(), /role="alert"/);
  const confirmed = await agent.postForm(`${pageUrl}/totp-enrolment`, { code: totpCode(secret, NOW) });
  t.is(confirmed.status, 200);
  const codesHtml = await confirmed.text();
  const recoveryCodes = [...codesHtml.matchAll(/<li><code>([a-z2-9]{5}-[a-z2-9]{5})<\/code><\/li>/g)].map(
    (m) => m[1],
  );
  t.is(recoveryCodes.length, 10);
  const done = await agent.postForm(`${pageUrl}/second-factor/continue`, {});
  t.is(done.status, 303);
  const flow = await runAuthorization(
    agent,
    new URL(done.headers.get('location') as string, pageUrl).href,
    redirectUri,
  );
  const tokens = await oidc.authorizationCodeGrant(rp, flow.callback, {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  return { secret, recoveryCodes, claims: tokens.claims() as oidc.IDToken, agent };
}

test.serial(
  'acr_values asking for multi-factor forces enrolment when the account has no second factor',
  async (t) => {
    const user = await deployment.addUser(server, 'forced.acr@example.com');
    const { claims, secret, recoveryCodes } = await forcedEnrolment(t, user, client, {
      acr_values: ACR.multiFactor,
    });
    t.deepEqual(claims.amr, ['pwd', 'otp']);
    t.is(claims.acr, ACR.multiFactor);
    const stored = await server.store.users.findByEmail(user.email);
    t.is(stored?.totp?.secret, secret);
    // From now on the second factor is asked on every sign-in, and a recovery code from the page works.
    const next = await signIn(user, { code: () => recoveryCodes[0] as string });
    t.deepEqual(next.pages, ['login', 'second-factor']);
  },
);

test.serial('a client registered with --require-mfa always gets two factors', async (t) => {
  const user = await deployment.addUser(server, 'forced.client@example.com');
  const { claims, secret } = await forcedEnrolment(t, user, strictClient);
  t.deepEqual(claims.amr, ['pwd', 'otp']);
  t.is(claims.acr, ACR.multiFactor);
  t.truthy(secret);
});

test.serial(
  'step-up: a password session asked for multi-factor enters only the second factor; prompt=login asks both again',
  async (t) => {
    const user = await totpUser('step.up@example.com');
    const agent = new UserAgent();
    const now = NOW;
    // The account's first sign-in passes both factors.
    const first = await signIn(user, { agent, code: () => totpCode(user.secret, now - STEP_MS) });
    t.deepEqual(first.pages, ['login', 'second-factor']);

    // An existing two-factor session satisfies acr_values without any page.
    const silent = await signIn(user, { agent, extra: { acr_values: ACR.multiFactor } });
    t.deepEqual(silent.pages, []);
    t.is(silent.claims.acr, ACR.multiFactor);

    // prompt=login re-asks the password and the code (OIDC Core §3.1.2.1).
    const again = await signIn(user, {
      agent,
      extra: { prompt: 'login' },
      code: () => totpCode(user.secret, now),
    });
    t.deepEqual(again.pages, ['login', 'second-factor']);
    t.deepEqual(again.claims.amr, ['pwd', 'otp']);

    // max_age=0 as well.
    const aged = await signIn(user, {
      agent,
      extra: { max_age: '0' },
      code: () => totpCode(user.secret, now + STEP_MS),
    });
    t.deepEqual(aged.pages, ['login', 'second-factor']);
  },
);

test.serial('step-up from a password-only session goes straight to the second factor', async (t) => {
  const user = await deployment.addUser(server, 'step.up.enrol@example.com');
  const agent = new UserAgent();
  const first = await signIn(user, { agent });
  t.deepEqual(first.claims.amr, ['pwd']);
  // The admin enrols an app; the session still holds a password-only sign-in.
  const { secret } = await new TotpFactor(server.store).enrolByEmail(user.email);
  const stepUp = await signIn(user, {
    agent,
    extra: { acr_values: ACR.multiFactor },
    code: () => totpCode(secret, NOW),
  });
  t.deepEqual(stepUp.pages, ['second-factor'], 'no password page: the session has it');
  t.deepEqual(stepUp.claims.amr, ['pwd', 'otp']);
  t.is(stepUp.claims.acr, ACR.multiFactor);
});

test.serial(
  'prompt=none with a password-only session and acr_values multi-factor is login_required',
  async (t) => {
    const user = await deployment.addUser(server, 'prompt.none@example.com');
    const agent = new UserAgent();
    await signIn(user, { agent });
    const request = authorizationUrl(client, { acr_values: ACR.multiFactor, prompt: 'none' });
    const flow = await runAuthorization(agent, await request.url(), redirectUri);
    t.is(flow.callback.searchParams.get('error'), 'login_required');
  },
);

test.serial('TOTP secrets and recovery codes are not readable in Redis', async (t) => {
  const user = await totpUser('totp.at-rest@example.com');
  const dump = await dumpPrefix(deployment.redis, deployment.prefix);
  t.false(dump.includes(user.secret));
  for (const code of user.recoveryCodes) t.false(dump.includes(code));
  const stored = await server.store.users.findByEmail(user.email);
  t.is(stored?.totp?.secret, user.secret, 'the store itself opens the sealed record');
  t.false(JSON.stringify(await server.store.users.list()).includes(user.secret), 'listings never show it');
});

test.serial(
  'the passkey endpoints answer malformed requests with a 4xx JSON error, never a 5xx',
  async (t) => {
    const agent = new UserAgent();
    const start = await agent.get(await authorizationUrl(client).url());
    const pageUrl = new URL(start.headers.get('location') as string, server.issuer).href;
    const passkeyPage = await agent.get(`${pageUrl}/passkey`);
    t.is(passkeyPage.status, 200);
    const csp = passkeyPage.headers.get('content-security-policy') ?? '';
    t.regex(csp, /script-src 'self'/);
    t.notRegex(csp, /unsafe-inline|unsafe-eval/);
    t.notRegex(await passkeyPage.text(), /<script>/, 'no inline script');
    const script = await fetch(`${server.issuer}/assets/webauthn.js`);
    t.is(script.status, 200);
    t.regex(script.headers.get('content-type') ?? '', /javascript/);
    t.regex(await script.text(), /startAuthentication/);

    const cases: [string, string, string][] = [
      ['/passkey', 'not json', 'application/json'],
      ['/passkey', '{"id":"x"}', 'text/plain'],
      ['/passkey', '{"id":"x","response":{}}', 'application/json'],
      ['/passkey', '[]', 'application/json'],
      ['/passkey', 'null', 'application/json'],
      ['/passkey', `{"id":"${'a'.repeat(40_000)}"}`, 'application/json'],
      ['/passkey/options', 'x=1', 'application/x-www-form-urlencoded'],
    ];
    for (const [path, body, type] of cases) {
      const response = await agent.postRaw(`${pageUrl}${path}`, body, type);
      t.true(
        response.status >= 400 && response.status < 500,
        `${path} ${type} ${body.slice(0, 20)}: ${response.status}`,
      );
      t.truthy(((await response.json()) as { error?: string }).error);
    }
    // A response without its challenge (none was asked for) is refused as well.
    const options = await agent.postRaw(`${pageUrl}/passkey/options`, '{}', 'application/json');
    t.is(options.status, 200);
    const { challenge } = (await options.json()) as { challenge: string };
    t.regex(challenge, /^[\w-]{20,}$/);
    const forged = await agent.postRaw(
      `${pageUrl}/passkey`,
      JSON.stringify({
        id: 'AAAA',
        rawId: 'AAAA',
        type: 'public-key',
        response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' },
      }),
      'application/json',
    );
    t.is(forged.status, 400);
    // A cross-site request (a browser names its origin) is refused before anything else.
    const crossSite = await agent.postRaw(`${pageUrl}/passkey/options`, '{}', 'application/json', {
      origin: 'https://evil.example',
    });
    t.is(crossSite.status, 403);
  },
);
