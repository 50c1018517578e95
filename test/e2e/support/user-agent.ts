import { createHash, randomBytes } from 'node:crypto';

/**
 * A minimal browser for tests that need no real one: a cookie jar (name, path), manual
 * redirects, and urlencoded form posts, the way a browser with JavaScript off behaves.
 */
interface Cookie {
  name: string;
  value: string;
  path: string;
}

export class UserAgent {
  readonly #cookies = new Map<string, Cookie>();
  /** Sent as X-Forwarded-For, for servers that trust a proxy: a browser at another address. */
  readonly #forwardedFor: string | undefined;

  constructor(options: { forwardedFor?: string } = {}) {
    this.#forwardedFor = options.forwardedFor;
  }

  cookieNames(): string[] {
    return [...new Set([...this.#cookies.values()].map((c) => c.name))];
  }

  /** A copy of this agent's cookies in another agent: the same browser talking to another instance. */
  copyCookiesTo(other: UserAgent): void {
    for (const [key, cookie] of this.#cookies) other.#cookies.set(key, { ...cookie });
  }

  async get(url: string): Promise<Response> {
    return this.#send(url, { method: 'GET' });
  }

  async postForm(url: string, form: Record<string, string>): Promise<Response> {
    return this.#send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }

  async postRaw(
    url: string,
    body: string,
    contentType: string,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    return this.#send(url, { method: 'POST', headers: { ...headers, 'content-type': contentType }, body });
  }

  /** A POST with no Content-Type header at all (bytes, not text, so fetch adds none). */
  async postUntyped(url: string, body = ''): Promise<Response> {
    return this.#send(url, { method: 'POST', body: new TextEncoder().encode(body) });
  }

  async #send(url: string, init: RequestInit): Promise<Response> {
    const target = new URL(url);
    const cookie = [...this.#cookies.values()]
      .filter((c) => target.pathname.startsWith(c.path))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    const headers = new Headers(init.headers);
    if (cookie) headers.set('cookie', cookie);
    if (!headers.has('accept')) headers.set('accept', 'text/html,application/xhtml+xml,*/*;q=0.8');
    if (this.#forwardedFor) headers.set('x-forwarded-for', this.#forwardedFor);
    const response = await fetch(url, {
      ...init,
      headers,
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
    this.#store(response.headers.getSetCookie());
    return response;
  }

  #store(setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [key = '', val = ''] = attribute.split('=');
        if (key.toLowerCase() === 'path') path = val;
        if (key.toLowerCase() === 'expires' && Date.parse(val) <= Date.now()) expired = true;
        if (key.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true;
      }
      const key = `${name} ${path}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }
}

export interface Credentials {
  email: string;
  password: string;
}

export interface FlowResult {
  /** Where the flow ended: the client's redirect URI with code (or error) and state. */
  callback: URL;
  /** Pages shown on the way, by kind. */
  pages: ('login' | 'second-factor' | 'consent')[];
}

/**
 * Drives an authorization request to its redirect back to the client: follows redirects, signs in
 * when a login page shows, approves (or denies) when a consent page shows. Bounded steps.
 */
export async function runAuthorization(
  agent: UserAgent,
  authorizationUrl: string,
  redirectUri: string,
  options: {
    credentials?: Credentials;
    consent?: 'approve' | 'deny';
    /** The code to enter when the second-factor page shows (TOTP or a recovery code). */
    secondFactor?: () => string;
  } = {},
): Promise<FlowResult> {
  const pages: FlowResult['pages'] = [];
  let url = authorizationUrl;
  for (let step = 0; step < 12; step++) {
    if (url.startsWith(redirectUri)) return { callback: new URL(url), pages };
    const response = await agent.get(url);
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location') as string, url).href;
      continue;
    }
    const html = await response.text();
    const uid = /\/interaction\/([^/"]+)\/(login|confirm|second-factor)"/.exec(html);
    if (response.status !== 200 || !uid)
      throw new Error(`unexpected page ${response.status} at ${url}: ${html.slice(0, 400)}`);
    const base = new URL(url).origin;
    let posted: Response;
    if (uid[2] === 'login') {
      if (!options.credentials) throw new Error('a login page showed and no credentials were given');
      pages.push('login');
      posted = await agent.postForm(`${base}/interaction/${uid[1]}/login`, { ...options.credentials });
    } else if (uid[2] === 'second-factor') {
      if (!options.secondFactor) throw new Error('a second-factor page showed and no code was given');
      pages.push('second-factor');
      posted = await agent.postForm(`${base}/interaction/${uid[1]}/second-factor`, {
        code: options.secondFactor(),
      });
    } else {
      pages.push('consent');
      const action = options.consent === 'deny' ? 'abort' : 'confirm';
      posted = await agent.postForm(`${base}/interaction/${uid[1]}/${action}`, {});
    }
    if (posted.status !== 303)
      throw new Error(`form post answered ${posted.status}: ${(await posted.text()).slice(0, 400)}`);
    url = new URL(posted.headers.get('location') as string, url).href;
  }
  throw new Error('the authorization flow did not finish in 12 steps');
}

/** An authorization request URL with PKCE S256; returns the verifier for the code exchange. */
export function authorizationRequest(
  issuer: string,
  params: { client_id: string; redirect_uri: string; scope: string } & Record<string, string>,
): { url: string; verifier: string; state: string } {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const query = new URLSearchParams({
    response_type: 'code',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state,
    ...params,
  });
  return { url: `${issuer}/auth?${query}`, verifier, state };
}

/** The code exchange for a public client (client_id in the body, RFC 6749 §4.1.3). */
export async function exchangeCode(
  issuer: string,
  callback: URL,
  { client_id, redirect_uri, verifier }: { client_id: string; redirect_uri: string; verifier: string },
): Promise<Record<string, string>> {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code') ?? '',
      client_id,
      redirect_uri,
      code_verifier: verifier,
    }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as Record<string, string>;
  if (response.status !== 200)
    throw new Error(`token endpoint answered ${response.status}: ${JSON.stringify(body)}`);
  return body;
}
