import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nunjucks from 'nunjucks';
import { PROJECT_ROOT } from '../../config/config.ts';

export const VIEWS_DIR = join(PROJECT_ROOT, 'views');

/** Shown in the header and titles of every page. */
export const PRODUCT_NAME = 'Insurance Account';

export interface Views {
  /** Renders `<name>.njk` with the variables every page needs added. */
  render(name: string, variables: Record<string, unknown>): string;
  /** The one stylesheet, served from STYLESHEET_PATH. */
  readonly stylesheet: string;
  /** The product icon, served from ICON_PATH (and /favicon.ico, which browsers ask for anyway). */
  readonly icon: string;
}

export const STYLESHEET_PATH = '/assets/app.css';
export const ICON_PATH = '/assets/icon.svg';

/** Templates are compiled once and auto-escape every variable; only `| safe` output is raw. */
export function createViews(issuer: string): Views {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(VIEWS_DIR, { noCache: false }), {
    autoescape: true,
    throwOnUndefined: false,
  });
  const common = { product: PRODUCT_NAME, origin: new URL(issuer).origin };
  return {
    render: (name, variables) => env.render(`${name}.njk`, { ...common, ...variables }),
    stylesheet: readFileSync(join(VIEWS_DIR, 'app.css'), 'utf8'),
    icon: readFileSync(join(VIEWS_DIR, 'icon.svg'), 'utf8'),
  };
}
