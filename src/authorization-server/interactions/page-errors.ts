import type { Context, Next } from 'koa';
import { errors } from 'oidc-provider';
import { describe } from '../../shared/describe-error.ts';
import { AppError, StoreUnavailableError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Store } from '../storage/store.ts';
import { setPageHeaders } from './security-headers.ts';
import type { Views } from './views.ts';

/** An error an interaction step raises on purpose, shown to the person as is. */
export class PageError extends AppError {
  constructor(status: number, code: string, message: string) {
    super(code, message, status, true);
  }
}

export interface ErrorPage {
  status: number;
  code: string;
  heading: string;
  message: string;
}

const EXPIRED: Omit<ErrorPage, 'status'> = {
  code: 'session_expired',
  heading: 'This sign-in has expired',
  message: 'The sign-in page was open too long, or it was opened in another browser.',
};

/**
 * First step of every interaction route: whatever goes wrong below ends on our error page with
 * the right status, not a JSON body or a stack trace. Unexpected errors are logged once.
 */
export function renderPageErrors(views: Views, store: Store, logger: Logger) {
  return async function renderFailures(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (error) {
      const page = errorPage(error, store);
      if (page.status >= 500 && page.status !== 503)
        logger.error({ err: describe(error) }, 'interaction failed');
      writeErrorPage(ctx, views, page);
    }
  };
}

/** The HTML error answer: the one formatter for every page error, ours and oidc-provider's. */
export function writeErrorPage(
  ctx: Pick<Context, 'set' | 'status' | 'type' | 'body'>,
  views: Views,
  page: ErrorPage,
): void {
  if (page.status === 503) ctx.set('Retry-After', String(StoreUnavailableError.RETRY_AFTER_SECONDS));
  setPageHeaders(ctx as Context);
  ctx.status = page.status;
  ctx.type = 'html';
  ctx.body = views.render('error', { title: page.heading, ...page });
}

export const UNAVAILABLE_PAGE: ErrorPage = {
  status: 503,
  code: 'temporarily_unavailable',
  heading: 'Please try again in a moment',
  message: 'The service is briefly unavailable. Nothing you entered was lost; try again shortly.',
};

function errorPage(error: unknown, store: Store): ErrorPage {
  if (error instanceof AppError && error.expose && error.status !== 503) {
    return {
      status: error.status,
      code: error.code,
      heading: 'We could not continue',
      message: error.message,
    };
  }
  if (error instanceof errors.SessionNotFound) return { status: 400, ...EXPIRED };
  const status = (error as { status?: number }).status ?? 500;
  if (status === 503 || !store.kv.ready) return UNAVAILABLE_PAGE;
  if (status < 500 && (error as { expose?: boolean }).expose) {
    return {
      status,
      code: 'invalid_request',
      heading: 'We could not continue',
      message: (error as Error).message,
    };
  }
  return {
    status: 500,
    code: 'server_error',
    heading: 'Something went wrong',
    message: 'An unexpected error occurred on our side. Please try again.',
  };
}
