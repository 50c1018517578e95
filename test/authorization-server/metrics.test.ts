import test from 'ava';
import { buildAdminApp, ensureAdminResource } from '../../src/authorization-server/admin-api/app.ts';
import { totpCode } from '../../src/authorization-server/second-factor/totp.ts';
import { TotpFactor } from '../../src/authorization-server/second-factor/totp-factor.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { observeSigningKeys } from '../../src/shared/metrics.ts';
import { API, API_SCOPES, Deployment, type TestUser } from '../e2e/support/deployment.ts';
import {
  authorizationRequest,
  exchangeCode,
  runAuthorization,
  UserAgent,
} from '../e2e/support/user-agent.ts';
import { basic, call, postForm, type Served, serve } from '../integration/support/harness.ts';
import type { RunningAuthServer } from '../support/auth-server.ts';
import { metricValue } from '../support/prometheus.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
let deployment: Deployment;
let as: RunningAuthServer;
let admin: Served;
let user: TestUser;
let m2mSecret: string;

test.before(async () => {
  deployment = await Deployment.create('metrics');
  // The /token limiter (a router of ours) runs first: the route is still oidc-provider's name.
  as = await deployment.start();
  observeSigningKeys(() => as.host.snapshot?.ring.keys);
  await deployment.addApi(as);
  user = await deployment.addUser(as, 'metrics@example.com');
  await as.store.clients.add({
    id: 'web',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', ...API_SCOPES],
    resources: [API],
    redirectUris: [REDIRECT],
    postLogoutRedirectUris: [],
    authMethod: 'none',
    firstParty: true,
  });
  const m2m = await as.store.clients.add({
    id: 'm2m',
    grants: ['client_credentials'],
    scope: ['policies:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  m2mSecret = String(m2m.client_secret);
  const audience = 'http://admin.metrics.test';
  await ensureAdminResource(as.store, audience);
  admin = await serve(
    buildAdminApp({
      config: as.config,
      store: as.store,
      host: as.host,
      logger: createLogger('test-admin', 'silent'),
      audience,
    }),
  );
});

test.after.always(async () => {
  await admin?.close();
  await deployment?.cleanup();
});

async function scrape(): Promise<string> {
  const response = await call(`${admin.url}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return response.text;
}

test.serial(
  '/metrics on the admin port answers without a token; the admin routes still need one',
  async (t) => {
    const metrics = await call(`${admin.url}/metrics`);
    t.is(metrics.status, 200);
    t.regex(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    t.regex(metrics.text, /# TYPE oauth_tokens_issued_total counter/);
    t.regex(metrics.text, /# TYPE process_cpu_seconds_total counter/);
    t.is((await call(`${admin.url}/keys`)).status, 401);
    t.is((await call(`${admin.url}/metrics`, { method: 'POST' })).status, 405);
  },
);

test.serial(
  'client credentials: a token counted by grant type, the request by route and status, Redis commands timed',
  async (t) => {
    const before = await scrape();
    const issued = await postForm(
      `${as.issuer}/token`,
      { grant_type: 'client_credentials', resource: API, scope: 'policies:read' },
      { authorization: basic('m2m', m2mSecret) },
    );
    t.is(issued.status, 200, issued.text);
    const refused = await postForm(
      `${as.issuer}/token`,
      { grant_type: 'client_credentials' },
      { authorization: basic('m2m', 'wrong') },
    );
    t.is(refused.status, 401);
    const after = await scrape();

    const tokens = { grant_type: 'client_credentials' };
    t.is(
      metricValue(after, 'oauth_tokens_issued_total', tokens) -
        metricValue(before, 'oauth_tokens_issued_total', tokens),
      1,
    );
    const route = (status: string) => ({ server: 'public', method: 'POST', route: 'token', status });
    for (const status of ['200', '401']) {
      t.is(
        metricValue(after, 'http_request_duration_seconds_count', route(status)) -
          metricValue(before, 'http_request_duration_seconds_count', route(status)),
        1,
        status,
      );
    }
    t.true(metricValue(after, 'redis_command_duration_seconds_count', { command: 'hgetall' }) > 0);
    t.regex(after, /# TYPE redis_command_errors_total counter/);
    t.true(metricValue(after, 'signing_key_age_seconds', { alg: 'RS256', status: 'current' }) >= 0);
    t.true(metricValue(after, 'signing_key_age_seconds', { alg: 'EdDSA', status: 'next' }) >= 0);
    t.is(metricValue(after, 'password_hash_queue_depth', {}), 0);
  },
);

test.serial(
  'sign-ins by outcome, tokens by grant type, refresh-token reuse: counted and in the audit trail',
  async (t) => {
    const before = await scrape();
    const agent = new UserAgent();
    const request = authorizationRequest(as.issuer, {
      client_id: 'web',
      redirect_uri: REDIRECT,
      scope: 'openid policies:read',
      resource: API,
    });
    // One wrong password, then the right one.
    const first = await agent.get(request.url);
    const interaction = new URL(first.headers.get('location') as string, as.issuer).href;
    const page = await (await agent.get(interaction)).text();
    const uid = /\/interaction\/([^/"]+)\/login"/.exec(page)?.[1];
    const wrong = await agent.postForm(`${as.issuer}/interaction/${uid}/login`, {
      email: user.email,
      password: 'not the password',
    });
    t.is(wrong.status, 200);
    const flow = await runAuthorization(agent, interaction, REDIRECT, { credentials: user });
    await exchangeCode(as.issuer, flow.callback, {
      client_id: 'web',
      redirect_uri: REDIRECT,
      verifier: request.verifier,
    });
    const replayed = await postForm(`${as.issuer}/token`, {
      grant_type: 'authorization_code',
      code: flow.callback.searchParams.get('code') ?? '',
      client_id: 'web',
      redirect_uri: REDIRECT,
      code_verifier: request.verifier,
    });
    t.is(replayed.status, 400);
    // The replay revoked the first grant: sign in again (the session stays) for the refresh part.
    const second = authorizationRequest(as.issuer, {
      client_id: 'web',
      redirect_uri: REDIRECT,
      scope: 'openid policies:read',
      resource: API,
    });
    const tokens = await exchangeCode(
      as.issuer,
      (await runAuthorization(agent, second.url, REDIRECT)).callback,
      {
        client_id: 'web',
        redirect_uri: REDIRECT,
        verifier: second.verifier,
      },
    );
    const refreshed = await postForm(`${as.issuer}/token`, {
      grant_type: 'refresh_token',
      refresh_token: String(tokens.refresh_token),
      client_id: 'web',
    });
    t.is(refreshed.status, 200, refreshed.text);
    const reused = await postForm(`${as.issuer}/token`, {
      grant_type: 'refresh_token',
      refresh_token: String(tokens.refresh_token),
      client_id: 'web',
    });
    t.is(reused.status, 400);
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string>) =>
      metricValue(after, name, labels) - metricValue(before, name, labels);
    t.is(delta('oauth_logins_total', { outcome: 'failure' }), 1);
    t.is(delta('oauth_logins_total', { outcome: 'success' }), 1);
    t.is(delta('oauth_tokens_issued_total', { grant_type: 'authorization_code' }), 2);
    t.is(delta('oauth_authorization_code_replay_total', {}), 1);
    t.is(delta('oauth_tokens_issued_total', { grant_type: 'refresh_token' }), 1);
    t.is(delta('oauth_refresh_token_reuse_total', {}), 1);
    t.is(
      delta('http_request_duration_seconds_count', {
        server: 'public',
        method: 'POST',
        route: '/interaction/:uid/login',
        status: '303',
      }),
      1,
    );

    // The audit trail is appended without holding up the response: poll for it.
    const actions = async () => (await as.store.audit.recent(50)).map((e) => `${e.action}:${e.target}`);
    for (let i = 0; i < 100 && !(await actions()).includes(`refresh_token.reuse:${user.sub}`); i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const recorded = await actions();
    t.true(recorded.includes(`signin.failure:${user.email}`), recorded.join());
    t.true(recorded.includes(`signin.success:${user.sub}`), recorded.join());
    t.true(recorded.includes(`refresh_token.reuse:${user.sub}`), recorded.join());
    // A replayed code is refused before oidc-provider loads whose it was: the client is named.
    t.like(
      (await as.store.audit.recent(50)).find((e) => e.action === 'authorization_code.replay'),
      {
        actor: 'web',
        outcome: 'refused',
      },
    );
  },
);

test.serial(
  'a sign-in with a second factor is counted once, when every factor passed, and audited with its methods',
  async (t) => {
    const person = await deployment.addUser(as, 'totp-metrics@example.com');
    const { secret } = await new TotpFactor(as.store).enrolByEmail(person.email);
    const before = await scrape();
    const request = authorizationRequest(as.issuer, {
      client_id: 'web',
      redirect_uri: REDIRECT,
      scope: 'openid policies:read',
      resource: API,
    });
    await runAuthorization(new UserAgent(), request.url, REDIRECT, {
      credentials: person,
      secondFactor: () => totpCode(secret),
    });
    const after = await scrape();
    t.is(
      metricValue(after, 'oauth_logins_total', { outcome: 'success' }) -
        metricValue(before, 'oauth_logins_total', { outcome: 'success' }),
      1,
    );
    let entry: { details?: Record<string, unknown> } | undefined;
    for (let i = 0; i < 100 && !entry; i++) {
      entry = (await as.store.audit.recent(20)).find(
        (e) => e.action === 'signin.success' && e.target === person.sub,
      );
      if (!entry) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    t.deepEqual(entry?.details, { method: 'pwd otp' });
  },
);

test.serial('a revoked token is in the audit trail; an unknown one is not', async (t) => {
  const issued = await postForm(
    `${as.issuer}/token`,
    { grant_type: 'client_credentials', resource: API, scope: 'policies:read' },
    { authorization: basic('m2m', m2mSecret) },
  );
  const revoke = (token: string) =>
    postForm(`${as.issuer}/token/revocation`, { token }, { authorization: basic('m2m', m2mSecret) });
  t.is((await revoke('not-a-token')).status, 200);
  t.is((await revoke(String(issued.json.access_token))).status, 200);
  let revocations: string[] = [];
  for (let i = 0; i < 100 && revocations.length === 0; i++) {
    revocations = (await as.store.audit.recent(20))
      .filter((e) => e.action === 'token.revoke')
      .map((e) => e.actor);
    if (!revocations.length) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.deepEqual(revocations, ['m2m']);
});

test.serial('unknown paths are counted as `unmatched`, never by their raw path', async (t) => {
  const path = '/no-such-route-3f9a';
  t.is((await call(`${as.issuer}${path}`)).status, 404);
  const after = await scrape();
  t.false(after.includes(path));
  t.true(
    metricValue(after, 'http_request_duration_seconds_count', {
      server: 'public',
      method: 'GET',
      route: 'unmatched',
      status: '404',
    }) >= 1,
  );
});
