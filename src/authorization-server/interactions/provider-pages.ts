import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ProviderPages } from '../provider/configuration.ts';
import { UNAVAILABLE_PAGE, writeErrorPage } from './page-errors.ts';
import { setPageHeaders } from './security-headers.ts';
import type { Views } from './views.ts';

/** Errors the person can act on get words; the rest get a generic page with the code. */
const FRIENDLY: Record<string, string> = {
  invalid_client: 'The application that sent you here is not registered with us.',
  invalid_redirect_uri: 'The application sent you with an address we do not recognise for it.',
  access_denied: 'The request was not allowed.',
  login_required: 'You need to sign in first.',
  session_not_found: 'Your sign-in session has ended. Go back to the app and start again.',
};

function clientName(ctx: KoaContextWithOIDC): string | undefined {
  const client = ctx.oidc?.client;
  return client ? (client.clientName ?? client.clientId) : undefined;
}

/** The pages oidc-provider renders itself, in our templates and under our headers. */
export function providerPages(views: Views): ProviderPages {
  return {
    renderError(ctx, out) {
      const code = String(out.error ?? 'server_error');
      const description = typeof out.error_description === 'string' ? out.error_description : '';
      if (ctx.status === 503) return writeErrorPage(ctx, views, UNAVAILABLE_PAGE);
      writeErrorPage(ctx, views, {
        status: ctx.status,
        heading: code === 'server_error' ? 'Something went wrong' : 'We could not continue',
        message:
          FRIENDLY[code] ??
          (code === 'server_error' ? 'An unexpected error occurred. Please try again.' : description),
        code,
      });
    },

    // `form` is the provider's markup: a form posting to the confirm endpoint with a hidden CSRF
    // token bound to the session. We take its action and token and render two complete forms of
    // our own, each carrying everything it submits, so a form posted as-is (by a browser without
    // scripts, or a harness that sends a form's inputs) means exactly what its button says.
    logoutSource(ctx, form) {
      const target = ctx.oidc.params?.post_logout_redirect_uri;
      const action = /\baction="([^"]+)"/.exec(form)?.[1];
      const xsrf =
        /\bname="xsrf"\s+value="([^"]+)"/.exec(form)?.[1] ??
        /\bvalue="([^"]+)"\s+name="xsrf"/.exec(form)?.[1];
      if (!action || !xsrf) throw new Error('unexpected logout form markup from oidc-provider');
      setPageHeaders(ctx, [typeof target === 'string' ? target : undefined]);
      ctx.type = 'html';
      ctx.body = views.render('logout', {
        title: 'Sign out',
        host: ctx.host,
        clientName: clientName(ctx),
        action,
        xsrf,
      });
    },

    postLogoutSuccessSource(ctx) {
      setPageHeaders(ctx);
      ctx.type = 'html';
      ctx.body = views.render('logged-out', { title: 'Signed out', clientName: clientName(ctx) });
    },
  };
}
