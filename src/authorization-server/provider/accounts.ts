import type { Account, KoaContextWithOIDC } from 'oidc-provider';
import type { UserStore } from '../storage/user-store.ts';

/** oidc-provider's account lookup: standard claims for openid, profile and email. */
export function findAccount(users: UserStore) {
  return async (_ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> => {
    const user = await users.findBySub(sub);
    if (!user) return undefined;
    return {
      accountId: user.sub,
      async claims() {
        return {
          sub: user.sub,
          email: user.email,
          email_verified: user.email_verified,
          ...(user.name ? { name: user.name } : {}),
          updated_at: Math.floor(Date.parse(user.updated_at) / 1000),
        };
      },
    };
  };
}
