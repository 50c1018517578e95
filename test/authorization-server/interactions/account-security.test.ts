import test from 'ava';
import { RECENT_SIGN_IN_SECONDS } from '../../../src/authorization-server/interactions/account-security.ts';
import { LOGIN_LIMITS } from '../../../src/authorization-server/rate-limit/limits.ts';
import { ACR } from '../../../src/authorization-server/second-factor/authentication-context.ts';
import { totpCode } from '../../../src/authorization-server/second-factor/totp.ts';
import { TotpFactor } from '../../../src/authorization-server/second-factor/totp-factor.ts';
import { Deployment, startClientSite } from '../../e2e/support/deployment.ts';
import { authorizationRequest, runAuthorization, UserAgent } from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';
import { movableClock } from '../../support/clock.ts';

/** A signed-in person turns on an authenticator app on /account/security, with JavaScript off. */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let redirectUri: string;
const NOW = Date.now();

// Serial: tests here sign in in parallel bursts; side by side they would fill the per-process
// password-hash queue (issue 9 #7) and get each other 503s.
test.before(async () => {
  deployment = await Deployment.create('test-account');
  server = await deployment.start({ clock: () => NOW });
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  await server.store.clients.add({
    id: 'account-app',
    grants: ['authorization_code'],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    authMethod: 'none',
    firstParty: true,
  });
});

const others: Deployment[] = [];

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
  await Promise.allSettled(others.map((d) => d.cleanup()));
});

const STEP_MS = 30_000;

/** The key on the enrolment page (the draft a code confirms). */
async function enrolmentSecret(agent: UserAgent): Promise<string> {
  const page = await agent.get(`${server.issuer}/account/security/totp`);
  if (page.status !== 200) throw new Error(`the enrolment page answered ${page.status}`);
  return (/<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(await page.text())?.[1] ?? '').replace(/ /g, '');
}

function recoveryCodesIn(html: string): string[] {
  return [...html.matchAll(/<li><code>([a-z2-9]{5}-[a-z2-9]{5})<\/code><\/li>/g)].map((m) => m[1] as string);
}

async function signedIn(email: string, code?: () => string) {
  const user = await deployment.addUser(server, email);
  const agent = new UserAgent();
  const { url } = authorizationRequest(server.issuer, {
    client_id: 'account-app',
    redirect_uri: redirectUri,
    scope: 'openid email',
  });
  await runAuthorization(agent, url, redirectUri, { credentials: user, secondFactor: code });
  return { user, agent };
}

test.serial(
  'a signed-in person enrols an app: QR code and key, one code, ten recovery codes, then it is on',
  async (t) => {
    const { user, agent } = await signedIn('self.enrol@example.com');
    const overview = await agent.get(`${server.issuer}/account/security`);
    t.is(overview.status, 200);
    t.regex(await overview.text(), /id="totp-status">Off\./);
    const page = await agent.get(`${server.issuer}/account/security/totp`);
    t.is(page.status, 200);
    const html = await page.text();
    t.regex(html, /<svg[^>]*viewBox/);
    t.notRegex(html, /<script/i);
    t.regex(page.headers.get('content-security-policy') ?? '', /form-action 'self'/);
    const secret = (/<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(html)?.[1] ?? '').replace(/ /g, '');
    t.regex(secret, /^[A-Z2-7]{32}$/);
    // The same key until it is confirmed (a reload does not change what was scanned).
    t.true(
      (await (await agent.get(`${server.issuer}/account/security/totp`)).text()).includes(secret.slice(0, 4)),
    );

    const wrong = await agent.postForm(`${server.issuer}/account/security/totp`, { code: '000000' });
    t.is(wrong.status, 200);
    t.regex(await wrong.text(), /role="alert"/);
    t.is((await server.store.users.findByEmail(user.email))?.totp, undefined);

    const done = await agent.postForm(`${server.issuer}/account/security/totp`, {
      code: totpCode(secret, NOW),
    });
    t.is(done.status, 200);
    const codes = [...(await done.text()).matchAll(/<li><code>([a-z2-9]{5}-[a-z2-9]{5})<\/code><\/li>/g)];
    t.is(codes.length, 10);
    t.is((await server.store.users.findByEmail(user.email))?.totp?.secret, secret);

    // The session signed in with a password only: it may look, but changes need the code now.
    t.is((await agent.get(`${server.issuer}/account/security`)).status, 200);
    t.is((await agent.get(`${server.issuer}/account/security/totp`)).status, 403);
    // The next sign-in asks for the app's code; then the page shows it on.
    const again = new UserAgent();
    const { url } = authorizationRequest(server.issuer, {
      client_id: 'account-app',
      redirect_uri: redirectUri,
      scope: 'openid email',
    });
    const flow = await runAuthorization(again, url, redirectUri, {
      credentials: user,
      secondFactor: () => totpCode(secret, NOW + 30_000),
    });
    t.deepEqual(flow.pages, ['login', 'second-factor']);
    const status = await again.get(`${server.issuer}/account/security`);
    t.is(status.status, 200);
    t.regex(await status.text(), /id="totp-status">On\./);
  },
);

test.serial(
  'without a session the page says to sign in first (401); cross-site posts are refused',
  async (t) => {
    const stranger = new UserAgent();
    t.is((await stranger.get(`${server.issuer}/account/security`)).status, 401);
    t.is((await stranger.postForm(`${server.issuer}/account/security/totp`, { code: '123456' })).status, 401);
    const forged = await fetch(`${server.issuer}/account/security/totp`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body: 'code=123456',
      redirect: 'manual',
    });
    t.is(forged.status, 403);
  },
);

test.serial('an account with an app cannot be changed from a password-only session', async (t) => {
  const { user, agent } = await signedIn('pwd.session@example.com');
  await new TotpFactor(server.store).enrolByEmail(user.email);
  t.is((await agent.get(`${server.issuer}/account/security/totp`)).status, 403);
  const posted = await agent.postForm(`${server.issuer}/account/security/totp`, { code: '123456' });
  t.is(posted.status, 403);
});

test.serial(
  'issue 9 #4: parallel wrong confirmation codes get no more checks than the backoff allows',
  async (t) => {
    const { agent } = await signedIn('confirm.parallel@example.com');
    await enrolmentSecret(agent);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        agent.postForm(`${server.issuer}/account/security/totp`, { code: '000000' }),
      ),
    );
    const statuses = answers.map((r) => r.status);
    const checked = statuses.filter((s) => s === 200).length;
    t.true(
      checked <= LOGIN_LIMITS.accountFromIp.freeFailures,
      `${checked} wrong codes answered without a hold`,
    );
    t.is(statuses.filter((s) => s !== 200 && s !== 429).length, 0, statuses.join(' '));
    t.true(answers.filter((r) => r.status === 429).every((r) => Number(r.headers.get('retry-after')) > 0));
  },
);

test.serial(
  'of parallel confirmations exactly one enrols an app, and its recovery codes are the ones that work',
  async (t) => {
    const { user, agent } = await signedIn('confirm.race@example.com');
    const secret = await enrolmentSecret(agent);
    // Codes of three time steps (all within the drift window), each sent several times at once.
    const codes = [-STEP_MS, 0, STEP_MS].flatMap((offset) => Array(3).fill(totpCode(secret, NOW + offset)));
    const answers = await Promise.all(
      codes.map((code) => agent.postForm(`${server.issuer}/account/security/totp`, { code })),
    );
    const pages = await Promise.all(answers.map(async (r) => ({ status: r.status, html: await r.text() })));
    const enrolled = pages.filter((p) => recoveryCodesIn(p.html).length > 0);
    t.is(enrolled.length, 1, pages.map((p) => p.status).join(' '));
    // The others: a replayed code (the form again, or 429 once the checks in flight filled the free
    // failures), a clear 409 or, once the app is on, 403 (the session has no second factor).
    t.true(
      pages.every((p) => [200, 403, 409, 429].includes(p.status)),
      pages.map((p) => p.status).join(' '),
    );
    const stored = await server.store.users.findByEmail(user.email);
    t.is(stored?.totp?.secret, secret);
    const shown = recoveryCodesIn(enrolled[0]?.html ?? '');
    t.is(
      await new TotpFactor(server.store).checkRecoveryCode(stored as never, shown[0] as string),
      'accepted',
    );
  },
);

test.serial(
  'an app turned on here is not replaced by a sign-in that enrols another later: 409',
  async (t) => {
    const { user, agent } = await signedIn('confirm.twice@example.com');
    const secret = await enrolmentSecret(agent);
    // Meanwhile another sign-in, asked for two factors, shows its own key for forced enrolment.
    const other = new UserAgent();
    const { url } = authorizationRequest(server.issuer, {
      client_id: 'account-app',
      redirect_uri: redirectUri,
      scope: 'openid email',
      acr_values: ACR.multiFactor,
    });
    const start = await other.get(url);
    const pageUrl = new URL(start.headers.get('location') as string, server.issuer).href;
    const login = await other.postForm(`${pageUrl}/login`, { email: user.email, password: user.password });
    t.is(login.status, 303);
    const enrolPage = await (
      await other.get(new URL(login.headers.get('location') as string, pageUrl).href)
    ).text();
    const otherSecret = (/<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrolPage)?.[1] ?? '').replace(
      / /g,
      '',
    );
    t.regex(otherSecret, /^[A-Z2-7]{32}$/);
    t.not(otherSecret, secret);

    const first = await agent.postForm(`${server.issuer}/account/security/totp`, {
      code: totpCode(secret, NOW),
    });
    t.is(recoveryCodesIn(await first.text()).length, 10);
    const second = await other.postForm(`${pageUrl}/totp-enrolment`, {
      code: totpCode(otherSecret, NOW + STEP_MS),
    });
    t.is(second.status, 409);
    t.regex(await second.text(), /already turned on/);
    t.is((await server.store.users.findByEmail(user.email))?.totp?.secret, secret, 'the first app stays');
  },
);

test.serial('changes need a recent sign-in: an older session may look, not change', async (t) => {
  const clock = movableClock();
  const stale = await Deployment.create('test-account-recent');
  others.push(stale);
  const staleServer = await stale.start({ clock });
  await staleServer.store.clients.add({
    id: 'account-app',
    grants: ['authorization_code'],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    authMethod: 'none',
    firstParty: true,
  });
  const user = await stale.addUser(staleServer, 'recent.sign-in@example.com');
  const agent = new UserAgent();
  const { url } = authorizationRequest(staleServer.issuer, {
    client_id: 'account-app',
    redirect_uri: redirectUri,
    scope: 'openid email',
  });
  await runAuthorization(agent, url, redirectUri, { credentials: user });
  const totpPage = `${staleServer.issuer}/account/security/totp`;
  t.is((await agent.get(totpPage)).status, 200, 'just signed in: changes are allowed');

  // auth_time is the real time of the sign-in: catch the standing clock up with it, then move past
  // the window.
  clock.advance(Math.max(0, Date.now() - clock()) + RECENT_SIGN_IN_SECONDS * 1000 + 1000);
  t.is((await agent.get(`${staleServer.issuer}/account/security`)).status, 200, 'looking is still fine');
  const page = await agent.get(totpPage);
  t.is(page.status, 403);
  t.regex(await page.text(), /recent_sign_in_needed/);
  const posted = await agent.postForm(totpPage, { code: '123456' });
  t.is(posted.status, 403);
  const passkey = await agent.postRaw(
    `${staleServer.issuer}/account/security/passkeys/options`,
    '{}',
    'application/json',
  );
  t.is(passkey.status, 403);
  t.like(await passkey.json(), { error: 'recent_sign_in_needed' });
  t.is((await staleServer.store.users.findByEmail(user.email))?.totp, undefined);
});
