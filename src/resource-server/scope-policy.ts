/**
 * THE table of what each route demands: the router is built from it, and the app refuses to start when a
 * route is registered without an entry here (deny by default). Reviewing access control means reading
 * this file.
 */
export type HttpMethod = 'GET' | 'POST';

export interface RoutePolicy {
  readonly method: HttpMethod;
  /** A @koa/router path pattern. */
  readonly path: string;
  /** The scope a token needs; null only for the public routes below. */
  readonly scope: string | null;
  /** Refuse tokens that carry no end user (client credentials): the route is over user-owned data. */
  readonly endUser: boolean;
  /** Ask the authorization server whether the token was revoked (when introspection is configured). */
  readonly revocationCheck: boolean;
}

export const PROTECTED_RESOURCE_METADATA_PATH = '/.well-known/oauth-protected-resource';

export const routePolicies = {
  health: { method: 'GET', path: '/health', scope: null, endUser: false, revocationCheck: false },
  protectedResourceMetadata: {
    method: 'GET',
    path: PROTECTED_RESOURCE_METADATA_PATH,
    scope: null,
    endUser: false,
    revocationCheck: false,
  },
  // Writes are checked against revocation: a stolen, revoked token must not create objects.
  createPolicy: {
    method: 'POST',
    path: '/policies',
    scope: 'policies:write',
    endUser: true,
    revocationCheck: true,
  },
  listPolicies: {
    method: 'GET',
    path: '/policies',
    scope: 'policies:read',
    endUser: true,
    revocationCheck: false,
  },
  getPolicy: {
    method: 'GET',
    path: '/policies/:id',
    scope: 'policies:read',
    endUser: true,
    revocationCheck: false,
  },
  createClaim: {
    method: 'POST',
    path: '/policies/:id/claims',
    scope: 'claims:write',
    endUser: true,
    revocationCheck: true,
  },
  listClaims: {
    method: 'GET',
    path: '/policies/:id/claims',
    scope: 'claims:read',
    endUser: true,
    revocationCheck: false,
  },
  // Aggregates without personal data, meant for machine clients: no end user required.
  claimsReport: {
    method: 'GET',
    path: '/reports/claims',
    scope: 'reports:read',
    endUser: false,
    revocationCheck: false,
  },
} as const satisfies Record<string, RoutePolicy>;

export type RouteId = keyof typeof routePolicies;

export function routeEntries(): [RouteId, RoutePolicy][] {
  return Object.entries(routePolicies) as [RouteId, RoutePolicy][];
}

/** The scopes this API understands, for the protected resource metadata (RFC 9728 §2). */
export function scopesSupported(): string[] {
  const scopes = routeEntries().flatMap(([, policy]) => (policy.scope === null ? [] : [policy.scope]));
  return [...new Set(scopes)];
}

export function findRoutePolicy(method: string, path: string): RoutePolicy | undefined {
  // A router serves HEAD with its GET handler, so HEAD is governed by the GET entry.
  const wanted = method === 'HEAD' ? 'GET' : method;
  return routeEntries().find(([, policy]) => policy.method === wanted && policy.path === path)?.[1];
}

export interface RegisteredRoute {
  readonly methods: readonly string[];
  readonly path: string | RegExp;
}

/** Routes registered on a router that have no entry in the table; empty when everything is covered. */
export function routesWithoutPolicy(routes: readonly RegisteredRoute[]): string[] {
  const missing: string[] = [];
  for (const route of routes) {
    const methods = route.methods.length === 0 ? ['(all)'] : route.methods;
    for (const method of methods) {
      if (typeof route.path !== 'string' || findRoutePolicy(method, route.path) === undefined) {
        missing.push(`${method} ${String(route.path)}`);
      }
    }
  }
  return missing;
}

export function assertEveryRouteHasPolicy(routes: readonly RegisteredRoute[]): void {
  const missing = routesWithoutPolicy(routes);
  if (missing.length > 0) {
    throw new Error(`routes without an entry in the scope table (deny by default): ${missing.join(', ')}`);
  }
}
