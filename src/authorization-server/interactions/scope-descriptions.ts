/** What each scope lets an application do, in the words the consent page uses. */
const DESCRIPTIONS: Record<string, string> = {
  openid: 'Know who you are when you sign in',
  profile: 'See your name',
  email: 'See your email address',
  offline_access: 'Keep this access when you are not using it',
  'policies:read': 'See your insurance policies',
  'policies:write': 'Take out new insurance policies in your name',
  'claims:read': 'See the claims on your policies',
  'claims:write': 'File claims on your policies',
  'reports:read': 'Read aggregate claims reports',
};

const CLAIMS: Record<string, string> = {
  name: 'See your name',
  email: 'See your email address',
  email_verified: 'See whether your email address is verified',
  updated_at: 'See when your profile last changed',
};

export interface Permission {
  scope: string;
  description: string;
}

export function describeScope(scope: string): Permission {
  return { scope, description: DESCRIPTIONS[scope] ?? `Use the “${scope}” permission` };
}

export function describeClaim(claim: string): Permission {
  return { scope: claim, description: CLAIMS[claim] ?? `See your “${claim}” information` };
}
