import type { Context, Next } from 'koa';
import { requestBody } from '../request-body.ts';
import { PageError } from './page-errors.ts';

export interface JsonState {
  json: unknown;
}

/**
 * The passkey pages' script posts JSON. Requiring `application/json` means a cross-site page
 * cannot send it without a CORS preflight (which nothing here answers); a browser's Origin, when
 * sent, must be ours.
 */
export function parseJson(issuer: string) {
  const origin = new URL(issuer).origin;
  return async function parseJson(ctx: Context, next: Next): Promise<void> {
    const sentFrom = ctx.get('origin');
    if (sentFrom && sentFrom !== origin)
      throw new PageError(403, 'cross_site', 'This request must come from this site.');
    if (!ctx.is('application/json'))
      throw new PageError(415, 'unsupported_media_type', 'Send application/json.');
    // Read, size-limited, by the app's body step (request-body.ts).
    const raw = requestBody(ctx);
    try {
      (ctx.state as JsonState).json = raw?.length ? JSON.parse(raw.toString('utf8')) : {};
    } catch {
      throw new PageError(400, 'invalid_json', 'The request is not valid JSON.');
    }
    await next();
  };
}

/** Errors of the JSON endpoints as JSON `{error, error_description}`, never an HTML page. */
export async function jsonErrors(ctx: Context, next: Next): Promise<void> {
  try {
    await next();
  } catch (error) {
    const status = (error as { status?: number }).status ?? 500;
    const expose = status < 500 && (error as { expose?: boolean }).expose === true;
    if (!expose && status !== 503) throw error;
    ctx.status = status;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      error: expose ? ((error as { code?: string }).code ?? 'invalid_request') : 'temporarily_unavailable',
      error_description: expose ? (error as Error).message : 'the service is temporarily unavailable',
    };
  }
}
