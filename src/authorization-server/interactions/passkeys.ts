import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Router from '@koa/router';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { Context, Next } from 'koa';
import { recordSignIn } from '../observability/security-events.ts';
import type { ProviderHost } from '../provider/provider-host.ts';
import type { LoginThrottle } from '../rate-limit/login-throttle.ts';
import { signInResult } from '../second-factor/authentication-context.ts';
import type { PasskeyFactor } from '../second-factor/passkey-factor.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/user-store.ts';
import { type InteractionContext, loadInteraction } from './interaction-context.ts';
import { type JsonState, jsonErrors, parseJson } from './json-body.ts';
import { waitText } from './login.ts';
import { PageError } from './page-errors.ts';
import { checkFailed, reserveCheck } from './reserved-check.ts';
import type { PendingSignIn, PendingSignIns } from './second-factor.ts';
import { setPageHeaders } from './security-headers.ts';
import { VIEWS_DIR, type Views } from './views.ts';

/** The browser half of @simplewebauthn, served from our origin (CSP script-src 'self'). */
export const WEBAUTHN_SCRIPT_PATH = '/assets/webauthn.js';
/** Our own small script that drives the passkey buttons. */
export const PASSKEY_SCRIPT_PATH = '/assets/passkeys.js';

const require = createRequire(import.meta.url);

function webauthnBundle(): string {
  // The package's entry is script/index.js; its self-contained browser bundle sits beside it.
  const root = dirname(dirname(require.resolve('@simplewebauthn/browser')));
  return readFileSync(join(root, 'dist', 'bundle', 'index.umd.min.js'), 'utf8');
}

/** Pages with the passkey script: scripts and fetches from our origin only, nothing inline. */
export function setScriptPageHeaders(ctx: Context, formTargets: (string | undefined)[] = []): void {
  setPageHeaders(ctx, formTargets);
  const csp = ctx.response.get('Content-Security-Policy');
  ctx.set(
    'Content-Security-Policy',
    csp.replace("default-src 'none';", "default-src 'none'; script-src 'self'; connect-src 'self';"),
  );
}

export interface PasskeyDeps {
  views: Views;
  store: Store;
  host: ProviderHost;
  issuer: string;
  throttle: LoginThrottle;
  passkeys: PasskeyFactor;
  pending: PendingSignIns;
  renderFailures: (ctx: Context, next: Next) => Promise<void>;
}

/**
 * Passkey sign-in at the login prompt: passwordless with a discoverable credential, or as the
 * second factor after the password. The page needs JavaScript (WebAuthn is a browser API); the
 * password and code pages do not.
 */
export function passkeyRoutes({
  views,
  store,
  host,
  issuer,
  throttle,
  passkeys,
  pending,
  renderFailures,
}: PasskeyDeps) {
  const router = new Router();
  const bundle = webauthnBundle();
  const script = readFileSync(join(VIEWS_DIR, 'passkeys.js'), 'utf8');
  const json = parseJson(issuer);

  const serveScript = (body: string) => (ctx: Context) => {
    ctx.type = 'application/javascript';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = body;
  };
  router.get(WEBAUTHN_SCRIPT_PATH, serveScript(bundle));
  router.get(PASSKEY_SCRIPT_PATH, serveScript(script));

  router.get(
    '/interaction/:uid/passkey',
    renderFailures,
    loadInteraction(host, 'login'),
    async function showPasskeyPage(ctx: InteractionContext) {
      const { interaction, client } = ctx.state;
      const state = await pending.get(interaction.uid);
      const user = state ? await store.users.findBySub(state.accountId) : undefined;
      setScriptPageHeaders(ctx, [client.redirectUri]);
      ctx.type = 'html';
      ctx.body = views.render('passkey-sign-in', {
        title: 'Sign in with a passkey',
        uid: interaction.uid,
        clientName: client.name,
        email: state?.email,
        secondFactor: state !== undefined,
        // A passkey-only account has no code to fall back to.
        otherWay: state === undefined || user?.totp !== undefined,
      });
    },
  );

  router.post(
    '/interaction/:uid/passkey/options',
    jsonErrors,
    loadInteraction(host, 'login'),
    json,
    async function passkeyOptions(ctx: InteractionContext) {
      const { interaction } = ctx.state;
      const state = await pending.get(interaction.uid);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await passkeys.authenticationOptions(interaction.uid, state?.accountId);
    },
  );

  /** The password step's sign-in when the passkey is the second factor; none when passwordless. */
  async function loadPending(ctx: InteractionContext, next: Next): Promise<void> {
    (ctx.state as { pending?: PendingSignIn }).pending = await pending.get(ctx.state.interaction.uid);
    await next();
  }

  function pendingOf(ctx: InteractionContext): PendingSignIn | undefined {
    return (ctx.state as { pending?: PendingSignIn }).pending;
  }

  function tooManyAttempts(ctx: InteractionContext, seconds: number): never {
    ctx.set('Retry-After', String(seconds));
    throw new PageError(
      429,
      'too_many_attempts',
      `Too many unsuccessful sign-in attempts. For your security, try again in ${waitText(seconds)}.`,
    );
  }

  /**
   * Each passkey check is reserved in the login backoff before the response is looked at (the one
   * reserveCheck, as codes and passwords are): as the second factor, charged to the account as
   * tried from this address like a wrong code; passwordless, when no account is named yet, to the
   * address's own counter, which its wrong passwords also fill.
   */
  const reservePasskeyCheck = reserveCheck((ctx: InteractionContext) => {
    const state = pendingOf(ctx);
    return state ? throttle.reserve({ email: state.email, ip: ctx.ip }) : throttle.reserveForAddress(ctx.ip);
  }, tooManyAttempts);

  /** The outcome in the metrics and the audit trail, as the password and code steps record theirs. */
  function signInEvent(
    ctx: InteractionContext,
    outcome: 'success' | 'failure' | 'throttled',
    account: string,
    amr: string[],
  ): void {
    recordSignIn(store.audit, { outcome, account, ip: ctx.ip, method: amr.join(' ') });
  }

  router.post(
    '/interaction/:uid/passkey',
    jsonErrors,
    loadInteraction(host, 'login'),
    json,
    loadPending,
    reservePasskeyCheck,
    async function verifyPasskey(ctx: InteractionContext) {
      const { interaction, provider } = ctx.state;
      const state = pendingOf(ctx);
      const response = (ctx.state as unknown as JsonState).json as AuthenticationResponseJSON;
      const outcome = await passkeys.authenticate(interaction.uid, response, state?.accountId);
      if (!outcome.ok) {
        // No challenge issued for this sign-in, or it expired or was used: nothing was checked, so
        // it is no guess (reserveCheck gives the reservation back).
        if (outcome.reason === 'no_challenge')
          throw new PageError(
            400,
            'passkey_no_challenge',
            'This passkey request expired or was already answered. Try the passkey again.',
          );
        const wait = await checkFailed(ctx);
        const account = state?.accountId ?? outcome.sub ?? 'unknown';
        const amr = [...(state?.amr ?? []), 'webauthn'];
        signInEvent(ctx, 'failure', account, amr);
        if (wait > 0) {
          signInEvent(ctx, 'throttled', account, amr);
          tooManyAttempts(ctx, wait);
        }
        const message =
          outcome.reason === 'cloned'
            ? 'This passkey was refused: its signature counter went back, as a copied authenticator’s would.'
            : 'That passkey did not work here. Try again, or use your password.';
        throw new PageError(400, `passkey_${outcome.reason}`, message);
      }
      const user = await store.users.findBySub(outcome.passkey.sub);
      if (!user) throw new PageError(400, 'account_gone', 'This account no longer exists.');
      const amr = state ? [...state.amr, outcome.method] : [outcome.method];
      if (state) await pending.delete(interaction.uid);
      // The sign-in is complete (a passkey alone is two factors): the account's failures from this
      // address are cleared and the address is known to it, as after a password and a code.
      await throttle.succeeded({ email: user.email, ip: ctx.ip });
      signInEvent(ctx, 'success', user.sub, amr);
      const location = await provider.interactionResult(ctx.req, ctx.res, signInResult(user.sub, amr), {
        mergeWithLastSubmission: false,
      });
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { location };
    },
  );

  return router;
}

/** The account page's passkey registration (the session checks are the account page's). */
export function passkeyRegistration(passkeys: PasskeyFactor, issuer: string) {
  const json = parseJson(issuer);
  return {
    options: [
      json,
      async function registrationOptions(ctx: Context) {
        ctx.set('Cache-Control', 'no-store');
        ctx.body = await passkeys.registrationOptions((ctx.state as { user: User }).user);
      },
    ],
    register: [
      json,
      async function register(ctx: Context) {
        const { user, json: body } = ctx.state as { user: User } & JsonState;
        const passkey = await passkeys.register(user, body as RegistrationResponseJSON);
        if (!passkey)
          throw new PageError(400, 'passkey_refused', 'The passkey could not be registered. Try again.');
        ctx.set('Cache-Control', 'no-store');
        ctx.status = 201;
        ctx.body = { location: '/account/security' };
      },
    ],
  };
}
