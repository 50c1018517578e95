import { Secret, TOTP } from 'otpauth';

/**
 * RFC 6238 with the parameters every authenticator app assumes when the URI names none: HMAC-SHA-1,
 * 6 digits, 30-second steps. A 160-bit secret, as RFC 4226 §4 recommends.
 */
const PARAMETERS = { algorithm: 'SHA1', digits: 6, period: 30 } as const;
const SECRET_BYTES = 20;

/** Steps of clock drift accepted either side of now (RFC 6238 §5.2 recommends at most one). */
export const TOTP_DRIFT_STEPS = 1;

export const TOTP_CODE = /^\d{6}$/;

export function newTotpSecret(): string {
  return new Secret({ size: SECRET_BYTES }).base32;
}

/** The `otpauth://totp/...` URI authenticator apps scan (Key Uri Format). */
export function otpauthUri(secret: string, account: string, issuer: string): string {
  return new TOTP({ ...PARAMETERS, issuer, label: account, secret: Secret.fromBase32(secret) }).toString();
}

/**
 * The time step (counter) a code belongs to, when it matches one within the drift window; else
 * undefined. The caller refuses any step at or before the last one accepted, so a code works once.
 */
export function totpStep(secret: string, code: string, now = Date.now()): number | undefined {
  if (!TOTP_CODE.test(code)) return undefined;
  const totp = new TOTP({ ...PARAMETERS, secret: Secret.fromBase32(secret) });
  const delta = totp.validate({ token: code, timestamp: now, window: TOTP_DRIFT_STEPS });
  if (delta === null) return undefined;
  return totp.counter({ timestamp: now }) + delta;
}

/** The code for a time (tests and the enrolment check compute codes with it). */
export function totpCode(secret: string, timestamp = Date.now()): string {
  return TOTP.generate({ ...PARAMETERS, secret: Secret.fromBase32(secret), timestamp });
}
