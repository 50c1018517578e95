import { parse as parseQuery } from 'node:querystring';
import type { Context, Next } from 'koa';
import { readRawBody } from '../provider/form-body.ts';

/** Our forms carry an email and a password at most. */
export const FORM_BODY_LIMIT = 8 * 1024;

export interface FormState {
  form: Record<string, string>;
}

/**
 * Interaction POSTs accept only urlencoded bodies, size-limited. A cross-site page cannot send
 * JSON here without a CORS preflight, and the forms themselves are bound to the interaction
 * cookie (SameSite=Lax) by oidc-provider.
 */
export async function parseForm(ctx: Context, next: Next): Promise<void> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    ctx.throw(415, 'forms are sent as application/x-www-form-urlencoded');
  }
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > FORM_BODY_LIMIT) ctx.throw(413, 'the form is too large');
  const raw = await readRawBody(ctx.req, FORM_BODY_LIMIT);
  if (!raw) {
    ctx.set('Connection', 'close');
    ctx.throw(413, 'the form is too large');
  }
  const parsed = parseQuery(raw.toString('utf8'));
  const form: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    // A repeated field is ambiguous; take none of it.
    if (typeof value === 'string') form[name] = value;
  }
  (ctx.state as FormState).form = form;
  await next();
}
