import { TextDecoder } from 'node:util';
import type { Context, Next } from 'koa';
import { requestBody } from '../request-body.ts';
import { PageError } from './page-errors.ts';

export interface FormState {
  form: Record<string, string>;
}

const FORM_TYPE = 'application/x-www-form-urlencoded';

/**
 * Interaction POSTs (login, consent, abort) take an urlencoded form, in whatever charset its
 * Content-Type names, or an empty body with no Content-Type at all: what scripted user agents
 * (Python requests, libcurl) send for a form whose only control is a button. Anything else is a
 * 415 on the error page; a cross-site page cannot send JSON here without a CORS preflight, and the
 * forms are bound to the interaction cookie (SameSite=Lax) by oidc-provider. The body itself was
 * read, size-limited, by the app's body step (request-body.ts).
 */
export async function parseForm(ctx: Context, next: Next): Promise<void> {
  const raw = requestBody(ctx);
  const typed = ctx.get('content-type') !== '';
  if (typed ? !ctx.is(FORM_TYPE) : raw !== undefined && raw.length > 0) {
    throw new PageError(415, 'unsupported_media_type', `Forms are sent as ${FORM_TYPE}.`);
  }
  const form: Record<string, string> = {};
  const repeated = new Set<string>();
  for (const [name, value] of decodeForm(raw ?? Buffer.alloc(0), ctx.request.charset)) {
    // A repeated field is ambiguous; take none of it.
    if (name in form || repeated.has(name)) {
      repeated.add(name);
      delete form[name];
    } else {
      form[name] = value;
    }
  }
  (ctx.state as FormState).form = form;
  await next();
}

/**
 * The fields of an urlencoded body. Percent-escapes are bytes in the form's charset (WHATWG URL
 * §5.1); an unknown charset label is read as UTF-8, as browsers do.
 */
function decodeForm(raw: Buffer, charset: string): [string, string][] {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset || 'utf-8');
  } catch {
    decoder = new TextDecoder('utf-8');
  }
  const decode = (text: string) => {
    const bytes = Buffer.from(text.replace(/\+/g, ' '), 'latin1');
    const out: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const hex = bytes[i] === 0x25 ? bytes.subarray(i + 1, i + 3).toString('latin1') : '';
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        out.push(Number.parseInt(hex, 16));
        i += 2;
      } else {
        out.push(bytes[i] as number);
      }
    }
    return decoder.decode(Uint8Array.from(out));
  };
  return raw
    .toString('latin1')
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const at = pair.indexOf('=');
      return at < 0 ? [decode(pair), ''] : [decode(pair.slice(0, at)), decode(pair.slice(at + 1))];
    });
}
