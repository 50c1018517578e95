/**
 * Multi-request flows as a load generator (its own process, pinned apart from the server):
 * - `login`: the full authorization code flow with PKCE, as a browser and a public client would
 *   do it (authorization request, login form, code exchange), over and over;
 * - `refresh`: refresh-token grants, each chain rotating its own token.
 * Input (argv[2], JSON). Prints { perSecond, failed, refreshTokens }.
 */
import { createHash, randomBytes } from 'node:crypto';

interface FlowInput {
  mode: 'login' | 'refresh';
  issuer: string;
  clientId: string;
  redirectUri: string;
  seconds: number;
  concurrency: number;
  users?: { email: string; password: string }[];
  refreshTokens?: string[];
}

const input = JSON.parse(process.argv[2] ?? '{}') as FlowInput;

/** A cookie-keeping user agent that follows nothing by itself. */
class UserAgent {
  readonly #cookies = new Map<string, string>();

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#cookies.size) headers.set('cookie', [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const response = await fetch(url, {
      ...init,
      headers,
      redirect: 'manual',
      signal: AbortSignal.timeout(15_000),
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (pair && eq > 0) this.#cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return response;
  }
}

async function login(user: { email: string; password: string }): Promise<string> {
  const agent = new UserAgent();
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    client_id: input.clientId,
    redirect_uri: input.redirectUri,
    response_type: 'code',
    scope: 'openid offline_access',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
  });
  let url = `${input.issuer}/auth?${query}`;
  for (let step = 0; step < 12; step++) {
    if (url.startsWith(input.redirectUri)) {
      const code = new URL(url).searchParams.get('code');
      if (!code) throw new Error(`no code: ${url}`);
      const token = await fetch(`${input.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          client_id: input.clientId,
          redirect_uri: input.redirectUri,
          code_verifier: verifier,
        }),
        signal: AbortSignal.timeout(15_000),
      });
      const body = (await token.json()) as { refresh_token?: string };
      if (token.status !== 200 || !body.refresh_token) throw new Error(`token ${token.status}`);
      return body.refresh_token;
    }
    const response = await agent.request(url);
    if (response.status >= 300 && response.status < 400) {
      await response.arrayBuffer();
      url = new URL(response.headers.get('location') as string, url).href;
      continue;
    }
    const html = await response.text();
    const form = /\/interaction\/([^/"]+)\/(login|confirm)"/.exec(html);
    if (response.status !== 200 || !form) throw new Error(`unexpected ${response.status} at ${url}`);
    const posted = await agent.request(`${input.issuer}/interaction/${form[1]}/${form[2]}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form[2] === 'login' ? new URLSearchParams(user).toString() : '',
    });
    await posted.arrayBuffer();
    if (posted.status !== 303) throw new Error(`form post ${posted.status}`);
    url = new URL(posted.headers.get('location') as string, url).href;
  }
  throw new Error('the flow did not finish in 12 steps');
}

async function refresh(token: string): Promise<string> {
  const response = await fetch(`${input.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: token,
      client_id: input.clientId,
    }),
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await response.json()) as { refresh_token?: string };
  if (response.status !== 200 || !body.refresh_token) throw new Error(`refresh ${response.status}`);
  return body.refresh_token;
}

let done = 0;
let failed = 0;
const refreshTokens: string[] = [];
const start = performance.now();
const until = start + input.seconds * 1000;
await Promise.all(
  Array.from({ length: input.concurrency }, async (_, lane) => {
    let chain = input.refreshTokens?.[lane];
    let turn = 0;
    while (performance.now() < until) {
      try {
        if (input.mode === 'login') {
          const users = input.users ?? [];
          const user = users[(lane + turn * input.concurrency) % users.length] as {
            email: string;
            password: string;
          };
          refreshTokens.push(await login(user));
        } else {
          chain = await refresh(chain as string);
        }
        done++;
      } catch (error) {
        failed++;
        if (failed <= 3) console.error(`flow failed: ${(error as Error).message}`);
        if (input.mode === 'refresh') break;
      }
      turn++;
    }
    if (input.mode === 'refresh' && chain) refreshTokens.push(chain);
  }),
);
console.log(
  JSON.stringify({ perSecond: done / ((performance.now() - start) / 1000), failed, refreshTokens }),
);
