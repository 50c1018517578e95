import test from 'ava';
import { Deployment, startClientSite, type TestUser } from '../../e2e/support/deployment.ts';
import {
  authorizationRequest,
  exchangeCode,
  runAuthorization,
  UserAgent,
} from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';

/**
 * Issue 10 item 3: the login, consent, abort and logout forms take a post from any user agent: an
 * empty body with no Content-Type (what Python requests or libcurl send for a button-only form)
 * and an urlencoded form with any charset parameter. Any other type is a 415 on the error page.
 * Serial: the tests share one user, whose consent to the client one of them gives.
 */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let redirectUri: string;
let loggedOutUri: string;
let user: TestUser;

test.before(async () => {
  deployment = await Deployment.create('test-form-posts');
  server = await deployment.start();
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  loggedOutUri = `${site.origin}/signed-out`;
  user = await deployment.addUser(server, 'form.posts@example.com');
  await server.store.clients.add({
    id: 'form-app',
    grants: ['authorization_code'],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [loggedOutUri],
    authMethod: 'none',
  });
});

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
});

/** Follows the authorization request (or a form's redirect) to the interaction page it lands on. */
async function openInteraction(agent: UserAgent, request = newRequest(), from?: Response) {
  let url = from ? new URL(from.headers.get('location') as string, server.issuer).href : request.url;
  for (let step = 0; step < 8; step++) {
    const response = await agent.get(url);
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location') as string, url).href;
      continue;
    }
    const html = await response.text();
    const match = /\/interaction\/([^/"]+)\/(login|confirm)"/.exec(html);
    if (!match) throw new Error(`no interaction page at ${url}: ${response.status}`);
    return { base: `${server.issuer}/interaction/${match[1]}`, prompt: match[2], request };
  }
  throw new Error('no interaction page in 8 steps');
}

function newRequest() {
  return authorizationRequest(server.issuer, {
    client_id: 'form-app',
    redirect_uri: redirectUri,
    scope: 'openid email',
  });
}

/** Follows redirects from a form's 303 until the client's redirect URI. */
async function landOnClient(agent: UserAgent, response: Response): Promise<URL> {
  let current = response;
  for (let step = 0; step < 8; step++) {
    const location = current.headers.get('location');
    if (!location) throw new Error(`expected a redirect, got ${current.status}`);
    const url = new URL(location, server.issuer);
    if (url.href.startsWith(redirectUri)) return url;
    current = await agent.get(url.href);
  }
  throw new Error('did not reach the client in 8 steps');
}

/** Opens a new request and signs in if asked; returns the consent page that follows. */
async function signIn(agent: UserAgent) {
  const login = await openInteraction(agent);
  if (login.prompt === 'confirm') return login;
  const posted = await agent.postRaw(
    `${login.base}/login`,
    credentials(),
    'application/x-www-form-urlencoded',
  );
  if (posted.status !== 303) throw new Error(`login answered ${posted.status}`);
  return openInteraction(agent, login.request, posted);
}

const credentials = () => new URLSearchParams({ email: user.email, password: user.password }).toString();

test.serial(
  'login: an empty post with no Content-Type is answered on the page, not refused as a media type',
  async (t) => {
    const agent = new UserAgent();
    const { base } = await openInteraction(agent);
    const response = await agent.postUntyped(`${base}/login`);
    t.not(response.status, 415);
    t.is(response.status, 200, 'the form comes back asking for the fields');
    t.regex(response.headers.get('content-type') ?? '', /^text\/html/);
  },
);

for (const type of [
  'application/x-www-form-urlencoded; charset=UTF-8',
  'application/x-www-form-urlencoded;charset=utf-8',
  'Application/X-WWW-Form-Urlencoded; charset=ISO-8859-1',
]) {
  test.serial(`login: ${type} signs the person in`, async (t) => {
    const agent = new UserAgent();
    const { base } = await openInteraction(agent);
    const response = await agent.postRaw(`${base}/login`, credentials(), type);
    t.is(response.status, 303);
  });
}

test.serial('consent and abort: empty posts with no Content-Type approve and deny', async (t) => {
  const agent = new UserAgent();
  const consent = await signIn(agent);
  t.is(consent.prompt, 'confirm');
  const denied = await landOnClient(agent, await agent.postUntyped(`${consent.base}/abort`));
  t.is(denied.searchParams.get('error'), 'access_denied');

  const again = await signIn(agent);
  t.is(again.prompt, 'confirm');
  const wrongType = await agent.postRaw(`${again.base}/confirm`, '', 'multipart/form-data; boundary=x');
  t.is(wrongType.status, 415);
  t.regex(wrongType.headers.get('content-type') ?? '', /^text\/html/);
  const approved = await landOnClient(agent, await agent.postUntyped(`${again.base}/confirm`));
  t.truthy(approved.searchParams.get('code'));
});

test.serial('login, consent and abort: other types get 415 on the error page', async (t) => {
  const agent = new UserAgent();
  const { base } = await openInteraction(agent);
  for (const [path, body, type] of [
    ['login', credentials(), 'text/plain'],
    ['login', JSON.stringify({ email: user.email, password: user.password }), 'application/json'],
    ['abort', '', 'text/plain'],
  ] as const) {
    const response = await agent.postRaw(`${base}/${path}`, body, type);
    t.is(response.status, 415, `${path} ${type}`);
    t.regex(response.headers.get('content-type') ?? '', /^text\/html/);
    t.regex(await response.text(), /application\/x-www-form-urlencoded/);
  }
  const untypedBody = await agent.postUntyped(`${base}/login`, credentials());
  t.is(untypedBody.status, 415, 'a body with no type is not guessed at');
});

test.serial(
  'logout: the form posted with a charset parameter signs out; another type is a 415 page',
  async (t) => {
    const agent = new UserAgent();
    const request = newRequest();
    // Signed in by a form post; consent was given by an earlier test, or is given here.
    const { callback } = await runAuthorization(agent, request.url, redirectUri, { credentials: user });
    const tokens = await exchangeCode(server.issuer, callback, {
      client_id: 'form-app',
      redirect_uri: redirectUri,
      verifier: request.verifier,
    });
    const query = new URLSearchParams({
      id_token_hint: tokens.id_token as string,
      post_logout_redirect_uri: loggedOutUri,
    });
    const page = await (await agent.get(`${server.issuer}/session/end?${query}`)).text();
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(page);
    const action = new URL(form?.[1] ?? '', server.issuer).href;
    const inputs = new URLSearchParams(
      [...(form?.[2] ?? '').matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map(
        (m) => [m[1], m[2]] as [string, string],
      ),
    ).toString();

    const refused = await agent.postRaw(action, inputs, 'text/plain');
    t.is(refused.status, 415);
    t.regex(refused.headers.get('content-type') ?? '', /^text\/html/);

    const done = await agent.postRaw(action, inputs, 'application/x-www-form-urlencoded; charset=UTF-8');
    t.is(done.status, 303);
    t.true((done.headers.get('location') ?? '').startsWith(loggedOutUri));
  },
);
