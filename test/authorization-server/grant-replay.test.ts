import test from 'ava';
import { Deployment, startClientSite, type TestUser } from '../e2e/support/deployment.ts';
import { authorizationRequest, runAuthorization, UserAgent } from '../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../support/auth-server.ts';
import { freePort } from '../support/auth-server.ts';

/**
 * Issue 9 finding 2: an authorization code or a refresh token redeemed twice at the same moment,
 * on two instances of one deployment. A code replay, at any timing, leaves nothing of its grant
 * usable (RFC 6749 §4.1.2, RFC 9700 §4.14); two uses of one refresh token never leave two live
 * chains. Truly parallel requests on two instances, a bounded number of trials each.
 */
const TRIALS = 8;

let deployment: Deployment;
let a: RunningAuthServer;
let b: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let user: TestUser;
let redirectUri: string;
let basic: string;
const agent = new UserAgent();

test.before(async () => {
  deployment = await Deployment.create('test-grant-replay');
  const issuerPort = await freePort();
  a = await deployment.start({ port: issuerPort });
  b = await deployment.start({ env: { ISSUER: a.issuer } });
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  user = await deployment.addUser(a, 'replay.user@example.com');
  const { client_id, client_secret } = await a.store.clients.add({
    id: 'replay-app',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    authMethod: 'client_secret_basic',
    firstParty: true,
  });
  basic = `Basic ${Buffer.from(`${client_id}:${client_secret}`).toString('base64')}`;
});

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
});

/** The same request sent to one instance's own port (a load balancer picking that instance). */
function via(server: RunningAuthServer, path: string): string {
  return `http://127.0.0.1:${server.port}${path}`;
}

async function post(server: RunningAuthServer, path: string, form: Record<string, string>) {
  const response = await fetch(via(server, path), {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function newCode(): Promise<{ code: string; verifier: string }> {
  const request = authorizationRequest(a.issuer, {
    client_id: 'replay-app',
    redirect_uri: redirectUri,
    scope: 'openid email',
  });
  const { callback } = await runAuthorization(agent, request.url, redirectUri, { credentials: user });
  return { code: callback.searchParams.get('code') ?? '', verifier: request.verifier };
}

const redeem = (server: RunningAuthServer, code: { code: string; verifier: string }) =>
  post(server, '/token', {
    grant_type: 'authorization_code',
    code: code.code,
    redirect_uri: redirectUri,
    code_verifier: code.verifier,
  });

const refresh = (server: RunningAuthServer, refreshToken: string) =>
  post(server, '/token', { grant_type: 'refresh_token', refresh_token: refreshToken });

const isActive = async (token: string) =>
  (await post(a, '/token/introspection', { token })).body.active === true;

test.serial(
  'a code redeemed twice at once, on two instances, leaves nothing of its grant usable',
  async (t) => {
    for (let trial = 0; trial < TRIALS; trial++) {
      const code = await newCode();
      const answers = await Promise.all([redeem(a, code), redeem(b, code)]);
      for (const answer of answers) t.true([200, 400].includes(answer.status), JSON.stringify(answer));
      t.true(answers.filter((answer) => answer.status === 200).length <= 1, `trial ${trial}: two winners`);
      for (const { body } of answers.filter((answer) => answer.status === 200)) {
        t.false(await isActive(String(body.access_token)), `trial ${trial}: access token still active`);
        const again = await refresh(a, String(body.refresh_token));
        t.is(again.status, 400, `trial ${trial}: the winner's refresh token still works`);
        t.is(again.body.error, 'invalid_grant');
      }
    }
  },
);

test.serial(
  'a refresh token used twice at once, on two instances, never leaves two live chains',
  async (t) => {
    for (let trial = 0; trial < TRIALS; trial++) {
      const first = await redeem(a, await newCode());
      t.is(first.status, 200);
      const spent = String(first.body.refresh_token);
      const answers = await Promise.all([refresh(a, spent), refresh(b, spent)]);
      for (const answer of answers) t.true([200, 400].includes(answer.status), JSON.stringify(answer));
      let live = 0;
      for (const { body } of answers.filter((answer) => answer.status === 200)) {
        if ((await refresh(b, String(body.refresh_token))).status === 200) live++;
      }
      t.true(live <= 1, `trial ${trial}: ${live} live refresh chains`);
    }
  },
);

test.serial(
  'issue 9 #11: deleting the fields beside a spent refresh token in Redis does not make it work again',
  async (t) => {
    const first = await redeem(a, await newCode());
    const spent = String(first.body.refresh_token);
    t.is((await refresh(a, spent)).status, 200);
    const key = a.store.keys.model('RefreshToken', spent);
    const fields = await deployment.redis.hkeys(key);
    t.true(fields.length > 0, 'the spent token is still on record (so its reuse is detected)');
    for (const field of fields.filter((name) => name !== 'p')) await deployment.redis.hdel(key, field);
    await deployment.redis.hdel(key, 'c');
    const reuse = await refresh(b, spent);
    t.is(reuse.status, 400);
    t.is(reuse.body.error, 'invalid_grant');
  },
);
