import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { codeReplay, grantTypeLabel, refreshTokenReuse, tokensIssued } from '../../shared/metrics.ts';
import { nameRoute } from '../../shared/metrics-http.ts';
import type { AuditLog } from '../storage/audit-log.ts';
import type { ClientUsage } from '../storage/client-usage.ts';

interface IssuedToken {
  gty?: string;
  clientId?: string;
  scope?: string;
}

/** oidc-provider's token kinds that can be revoked at the revocation endpoint. */
const REVOCABLE = ['AccessToken', 'ClientCredentials', 'RefreshToken'] as const;

/**
 * Watches one oidc-provider instance through its documented extension points (`provider.use`,
 * events): names each request's route for the request metrics, counts access tokens by grant type
 * (opaque ones are `saved`, JWTs `issued`), and appends security events to the audit trail:
 * refresh-token reuse and code replay (both revoke the grant) and token revocation.
 */
export function observeProvider(
  provider: Provider,
  { audit, usage }: { audit: AuditLog; usage: ClientUsage },
): void {
  provider.use(async function observeRequest(ctx: KoaContextWithOIDC, next: () => Promise<void>) {
    try {
      await next();
    } finally {
      const route = ctx.oidc?.route;
      if (route) nameRoute(ctx.res, route);
      if (route === 'revocation' && ctx.status === 200) auditRevocation(ctx, audit);
    }
  });

  const issued = (grantType: string) => (token: IssuedToken) => {
    const grant = grantType || grantTypeLabel(token.gty, 'unknown');
    tokensIssued.inc({ grant_type: grant });
    if (token.clientId)
      usage.record(token.clientId, grant, (token.scope ?? '').split(' ').filter(Boolean)).catch(() => {
        // usage is advice for doctor; a lost day is harmless
      });
  };
  // Opaque tokens are `saved`, JWTs `issued`.
  provider.on('access_token.saved', issued(''));
  provider.on('access_token.issued', issued(''));
  provider.on('client_credentials.saved', issued('client_credentials'));
  provider.on('client_credentials.issued', issued('client_credentials'));

  provider.on('grant.revoked', (ctx: KoaContextWithOIDC) => {
    if (ctx.oidc?.route !== 'token') return;
    const grantType = String(ctx.oidc.params?.grant_type ?? '');
    const action =
      grantType === 'refresh_token'
        ? 'refresh_token.reuse'
        : grantType === 'authorization_code'
          ? 'authorization_code.replay'
          : undefined;
    if (!action) return;
    (action === 'refresh_token.reuse' ? refreshTokenReuse : codeReplay).inc();
    audit.notify({
      actor: ctx.oidc.client?.clientId ?? 'unknown client',
      action,
      target: accountOf(ctx),
      source: ctx.ip,
      outcome: 'refused',
      details: { grant_revoked: true },
    });
  });
}

function auditRevocation(ctx: KoaContextWithOIDC, audit: AuditLog): void {
  const entities = (ctx.oidc?.entities ?? {}) as Record<
    string,
    { clientId?: string; accountId?: string } | undefined
  >;
  const kind = REVOCABLE.find((k) => entities[k]);
  if (!kind) return; // unknown or foreign token: RFC 7009 answers 200 all the same, nothing was revoked
  audit.notify({
    actor: ctx.oidc.client?.clientId ?? 'unknown client',
    action: 'token.revoke',
    target: entities[kind]?.accountId ?? entities[kind]?.clientId,
    source: ctx.ip,
    outcome: 'ok',
    details: { kind },
  });
}

/** The end user behind a token request, from whichever entity oidc-provider has loaded by then. */
function accountOf(ctx: KoaContextWithOIDC): string | undefined {
  const entities = (ctx.oidc?.entities ?? {}) as Record<string, { accountId?: string } | undefined>;
  return ['Account', 'AuthorizationCode', 'RefreshToken']
    .map((kind) => entities[kind]?.accountId)
    .find((id) => typeof id === 'string');
}
