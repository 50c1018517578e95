/**
 * The baseline: plain oidc-provider v9, in memory, issuing client-credentials JWT access tokens
 * signed ES256 for one resource, with nothing of ours around it.
 */
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const API = 'https://api.bench.test';
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'bench' };

const server = (await import('node:http')).createServer();
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'bench',
      client_secret: 'bench-secret-bench-secret-bench-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'reports:read',
      // The only key is ES256; oidc-provider would otherwise expect RS256 for ID tokens.
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [jwk as never] },
  scopes: ['reports:read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => API,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'reports:read',
        audience: API,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
server.on('request', provider.callback());
console.log(
  `READY ${JSON.stringify({ url: issuer, clientId: 'bench', clientSecret: 'bench-secret-bench-secret-bench-secret' })}`,
);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
