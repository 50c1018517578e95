import { z } from 'zod';
import { AuthorizationServerUnavailable } from './errors.ts';

export interface IntrospectionCredentials {
  readonly clientId: string;
  readonly clientSecret: string;
}

const introspectionResponse = z.object({ active: z.boolean() });

// RFC 6749 §2.3.1: client_secret_basic form-urlencodes id and secret before base64.
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

/**
 * Asks the authorization server whether the token is still active (RFC 7662 §2). Fails closed: when the
 * answer cannot be had, the caller gets 503 rather than a possibly revoked token being accepted.
 */
export async function introspectActive(
  endpoint: URL,
  token: string,
  credentials: IntrospectionCredentials,
  options: { readonly fetch: typeof fetch; readonly timeoutMs: number },
): Promise<boolean> {
  const basic = Buffer.from(
    `${formEncode(credentials.clientId)}:${formEncode(credentials.clientSecret)}`,
  ).toString('base64');
  let response: Response;
  try {
    response = await options.fetch(endpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
      redirect: 'error',
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (cause) {
    throw new AuthorizationServerUnavailable('the token introspection endpoint is unavailable', { cause });
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new AuthorizationServerUnavailable(`the token introspection endpoint answered ${response.status}`);
  }
  const parsed = introspectionResponse.safeParse(await response.json().catch(() => undefined));
  if (!parsed.success) {
    throw new AuthorizationServerUnavailable('the token introspection endpoint answered nonsense');
  }
  return parsed.data.active;
}
