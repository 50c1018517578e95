import Router from '@koa/router';
import type { Config } from '../../config/config.ts';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ProviderPages } from '../provider/configuration.ts';
import type { ProviderHost } from '../provider/provider-host.ts';
import { LoginThrottle } from '../rate-limit/login-throttle.ts';
import { PasskeyFactor } from '../second-factor/passkey-factor.ts';
import { TotpFactor } from '../second-factor/totp-factor.ts';
import type { Store } from '../storage/store.ts';
import { accountSecurity } from './account-security.ts';
import { consentSteps, denyRequest, renderConsent } from './consent.ts';
import { seedDemoData } from './demo-data.ts';
import { parseForm } from './form-body.ts';
import { type InteractionContext, loadInteraction } from './interaction-context.ts';
import { loginSteps, renderLogin } from './login.ts';
import { PageError, renderPageErrors } from './page-errors.ts';
import { passkeyRoutes } from './passkeys.ts';
import { providerPages } from './provider-pages.ts';
import { PendingSignIns, secondFactor } from './second-factor.ts';
import { ICON_PATH, PRODUCT_NAME, STYLESHEET_PATH, type Views } from './views.ts';

export interface InteractionDeps {
  config: Config;
  store: Store;
  logger: Logger;
  views: Views;
  /** Built before the interactions, with the pages of createProviderPages. */
  host: ProviderHost;
  /** The clock of the login throttle and TOTP checks (epoch ms); tests move it instead of sleeping. */
  clock?: Clock;
}

export interface Interactions {
  routers: Router[];
  seedDemoData?: () => Promise<void>;
}

/**
 * The pages oidc-provider renders itself (errors, logout), in our templates. They are built before
 * the provider host, which needs them, and the interactions, which need the host, come after.
 */
export function createProviderPages(views: Views): ProviderPages {
  return providerPages(views);
}

/**
 * End-user interactions: the login and consent pages oidc-provider sends people to, the
 * stylesheet.
 */
export function createInteractions({
  config,
  store,
  logger,
  views,
  host,
  clock,
}: InteractionDeps): Interactions {
  const throttle = new LoginThrottle(store, clock);
  const totp = new TotpFactor(store, clock);
  const factors = secondFactor({ views, store, throttle, totp });
  const deps = {
    views,
    users: store.users,
    throttle,
    audit: store.audit,
    consents: store.consents,
    secondFactor: factors,
  };
  const renderFailures = renderPageErrors(views, store, logger);

  const pages = new Router();
  pages.get(STYLESHEET_PATH, (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = views.stylesheet;
  });
  pages.get([ICON_PATH, '/favicon.ico'], (ctx) => {
    ctx.type = 'image/svg+xml';
    ctx.set('Cache-Control', 'public, max-age=86400');
    ctx.body = views.icon;
  });

  pages.get(
    '/interaction/:uid',
    renderFailures,
    loadInteraction(host),
    async function showPrompt(ctx: InteractionContext) {
      const { prompt } = ctx.state.interaction;
      if (prompt.name === 'login') return factors.showLoginStep(ctx, () => renderLogin(ctx, views));
      if (prompt.name === 'consent') return renderConsent(ctx, deps);
      throw new PageError(400, 'unsupported_prompt', 'This sign-in step is not supported.');
    },
  );
  pages.post(
    '/interaction/:uid/login',
    renderFailures,
    loadInteraction(host, 'login'),
    parseForm,
    ...loginSteps(deps),
  );
  pages.post(
    '/interaction/:uid/second-factor',
    renderFailures,
    loadInteraction(host, 'login'),
    parseForm,
    ...factors.codeSteps,
  );
  pages.post(
    '/interaction/:uid/totp-enrolment',
    renderFailures,
    loadInteraction(host, 'login'),
    parseForm,
    ...factors.enrolmentSteps,
  );
  pages.post(
    '/interaction/:uid/second-factor/continue',
    renderFailures,
    loadInteraction(host, 'login'),
    parseForm,
    ...factors.continueSteps,
  );
  pages.post(
    '/interaction/:uid/confirm',
    renderFailures,
    loadInteraction(host, 'consent'),
    parseForm,
    ...consentSteps(deps),
  );
  pages.post('/interaction/:uid/abort', renderFailures, loadInteraction(host), parseForm, denyRequest);

  const passkeys = new PasskeyFactor(store, config.issuer, PRODUCT_NAME);
  const account = accountSecurity({
    views,
    store,
    host,
    issuer: config.issuer,
    throttle,
    totp,
    passkeys,
    renderFailures,
    clock,
  });
  const passkeyPages = passkeyRoutes({
    views,
    store,
    host,
    issuer: config.issuer,
    throttle,
    passkeys,
    pending: new PendingSignIns(store),
    renderFailures,
  });

  const routers = [pages, account, passkeyPages];

  return {
    routers,
    seedDemoData: () => seedDemoData(store, logger, config.keysDir),
  };
}
