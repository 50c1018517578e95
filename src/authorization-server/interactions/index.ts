import type Router from '@koa/router';
import type { Config } from '../../config/config.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ProviderPages } from '../provider/configuration.ts';
import type { ProviderHost } from '../provider/provider-host.ts';
import type { Store } from '../storage/store.ts';

export interface InteractionDeps {
  config: Config;
  store: Store;
  logger: Logger;
  host: () => ProviderHost;
}

export interface Interactions {
  pages: ProviderPages;
  routers: Router[];
  seedDemoData?: () => Promise<void>;
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function createInteractions(_deps: InteractionDeps): Interactions {
  return {
    routers: [],
    pages: {
      renderError(ctx, out) {
        ctx.type = 'html';
        ctx.body = `<!doctype html><title>Error</title><p>${escape(String(out.error))}</p>`;
      },
      logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = `<!doctype html><title>Sign out</title>${form}<button form="op.logoutForm" name="logout" value="yes">Sign out</button>`;
      },
      postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = '<!doctype html><title>Signed out</title><p>Signed out</p>';
      },
    },
  };
}
