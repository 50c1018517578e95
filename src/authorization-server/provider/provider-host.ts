import Provider, { type KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../../config/config.ts';
import { describe } from '../../shared/describe-error.ts';
import { StoreUnavailableError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import { publicJwk } from '../keys/signing-key-ring.ts';
import { observeProvider } from '../observability/provider-events.ts';
import type { Store } from '../storage/store.ts';
import { type ProviderPages, type ProviderSnapshot, providerConfiguration } from './configuration.ts';
import { discoveryScopes } from './discovery-scopes.ts';
import { jwksCacheControl } from './jwks-cache-control.ts';
import { jwtTokenRegistryBridge } from './jwt-token-registry.ts';
import { rfc6749ErrorCodes } from './rfc6749-error-codes.ts';
import { rejectRepeatedParameters } from './strict-parameters.ts';
import { tokenResponseScope } from './token-response-scope.ts';

export interface ProviderHostDeps {
  config: Config;
  store: Store;
  logger: Logger;
  pages: ProviderPages;
}

/**
 * Holds the live oidc-provider instance. Signing keys are fixed when a Provider
 * is built, so a change in the store builds a complete new Provider and then swaps one reference:
 * requests already running finish on the old one, no request ever sees a half-built one.
 */
export class ProviderHost {
  readonly #deps: ProviderHostDeps;
  #current: Provider | undefined;
  #handler: ReturnType<Provider['callback']> | undefined;
  #snapshot: ProviderSnapshot | undefined;
  #stopWatching: (() => Promise<void>) | undefined;

  constructor(deps: ProviderHostDeps) {
    this.#deps = deps;
  }

  get provider(): Provider {
    if (!this.#current) throw new Error('provider not loaded yet');
    return this.#current;
  }

  /** The live provider's request handler, built once per provider. */
  get handler(): ReturnType<Provider['callback']> {
    if (!this.#handler) throw new Error('provider not loaded yet');
    return this.#handler;
  }

  get loaded(): boolean {
    return this.#current !== undefined;
  }

  get snapshot(): ProviderSnapshot | undefined {
    return this.#snapshot;
  }

  /** Loads the keys (creating them on first start), builds the provider, and starts watching. */
  async start(): Promise<void> {
    await this.reload();
    this.#stopWatching = await this.#deps.store.feed.watch(
      this.#deps.config.reloadIntervalMs,
      () => this.reload(),
      (error) => this.#deps.logger.warn({ err: describe(error) }, 'could not check the store for changes'),
    );
  }

  async reload(): Promise<void> {
    const { store, logger } = this.#deps;
    const ring = await store.keyRing.ensure();
    const snapshot = { ring };
    const provider = this.#build(snapshot);
    const before = this.#snapshot?.ring.keys.filter((k) => k.status === 'current').map((k) => k.kid);
    const handler = provider.callback();
    this.#current = provider;
    this.#handler = handler;
    this.#snapshot = snapshot;
    const signing = ring.keys.filter((k) => k.status === 'current').map((k) => `${k.alg}:${k.kid}`);
    if (
      before?.join() !==
      ring.keys
        .filter((k) => k.status === 'current')
        .map((k) => k.kid)
        .join()
    ) {
      logger.info({ signing }, 'signing keys loaded');
    }
  }

  async stop(): Promise<void> {
    await this.#stopWatching?.();
  }

  #build(snapshot: ProviderSnapshot): Provider {
    const { config, store, logger, pages } = this.#deps;
    const provider = new Provider(config.issuer, providerConfiguration(config, store, snapshot, pages));
    provider.proxy = config.trustProxy;
    observeProvider(provider, store);
    provider.maxIpsCount = config.proxyHops;
    provider.use(jsonNotFound);
    provider.use(rejectRepeatedParameters(pages.renderError));
    provider.use(retryAfterWhenUnavailable);
    provider.use(logoutFormType);
    provider.use(rfc6749ErrorCodes);
    provider.use(tokenResponseScope);
    provider.use(discoveryScopes(store.resources));
    provider.use(jwksCacheControl);
    provider.use(
      jwtTokenRegistryBridge(
        store.keys,
        snapshot.ring.keys.map((k) => publicJwk(k.jwk)),
      ),
    );
    provider.on('server_error', (_ctx, error) =>
      logger.error({ err: describe(error) }, 'oidc-provider server error'),
    );
    return provider;
  }
}

/** Unknown paths and methods answer in JSON like every other endpoint, not Koa's plain "Not Found". */
async function jsonNotFound(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  if (ctx.status === 404 && ctx.body == null) {
    ctx.body = { error: 'not_found', error_description: 'no such endpoint (or not with this method)' };
    ctx.status = 404;
  }
}

/**
 * Our logout page posts its form to the provider's end_session_confirm route, which accepts an
 * urlencoded body or none; a body of another type is refused there (400, on our error page). For
 * a page's form that is a 415, as for our other pages' forms (interactions/form-body.ts).
 */
async function logoutFormType(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  const route = (ctx as { oidc?: { route?: string } }).oidc?.route;
  if (
    route === 'end_session_confirm' &&
    ctx.status === 400 &&
    ctx.get('content-type') !== '' &&
    !ctx.is('application/x-www-form-urlencoded')
  ) {
    ctx.status = 415;
  }
}

/** A 503 (the store is away) tells the client when to retry, as every other surface does. */
async function retryAfterWhenUnavailable(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  if (ctx.status === 503 && !ctx.response.get('Retry-After')) {
    ctx.set('Retry-After', String(StoreUnavailableError.RETRY_AFTER_SECONDS));
  }
}
