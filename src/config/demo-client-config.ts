import { z } from 'zod';
import { type Env, field, readEnv, resolveIssuer, sharedShape } from './fields.ts';

/**
 * The demo web client (`npm run demo-client`): a small relying party for the demo store's
 * `demo-web` client, to watch a person sign in. Development only.
 */
export interface DemoClientConfig {
  /** DEMO_CLIENT_PORT, default 8080: the demo store registers http://localhost:8080/callback. */
  readonly port: number;
  /** The app's own origin, http://localhost:$DEMO_CLIENT_PORT; the redirect URI is `${baseUrl}/callback`. */
  readonly baseUrl: string;
  /** ISSUER (default http://localhost:$PORT): the authorization server, found through discovery. */
  readonly issuer: string;
  /** DEMO_CLIENT_ID, default demo-web: a public client (no secret), PKCE S256. */
  readonly clientId: string;
  /** DEMO_API_URL, default http://localhost:$RS_PORT: the sample API, and the resource indicator asked for. */
  readonly apiUrl: string;
  readonly logLevel: string;
}

const shape = {
  ...sharedShape,
  DEMO_CLIENT_PORT: field.portOrZero.default(8080),
  DEMO_CLIENT_ID: z
    .string()
    .regex(/^[\x21-\x7E]{1,128}$/, '1-128 visible ASCII characters')
    .default('demo-web'),
  DEMO_API_URL: field.httpUrl.optional(),
  RS_PORT: field.portOrZero.default(4000),
};

export function loadDemoClientConfig(source: Env = process.env): DemoClientConfig {
  const e = readEnv(source, shape);
  return {
    port: e.DEMO_CLIENT_PORT,
    baseUrl: `http://localhost:${e.DEMO_CLIENT_PORT}`,
    issuer: resolveIssuer(e, false, []),
    clientId: e.DEMO_CLIENT_ID,
    apiUrl: (e.DEMO_API_URL ?? `http://localhost:${e.RS_PORT}`).replace(/\/$/, ''),
    logLevel: e.LOG_LEVEL,
  };
}
