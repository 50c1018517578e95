import { randomInt } from 'node:crypto';

/** Ten codes per enrolment, each usable once, for when the authenticator app is lost. */
export const RECOVERY_CODE_COUNT = 10;

// Lower-case letters and digits without the look-alikes (0/o, 1/l/i): easy to copy from paper.
const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const LENGTH = 10;

/** `xxxxx-xxxxx`: 10 characters of a 31-letter alphabet, about 49 bits each. */
export function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => {
    const chars = Array.from({ length: LENGTH }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
    return `${chars.slice(0, 5)}-${chars.slice(5)}`;
  });
}

/** What people type back: any case, with or without the dash and spaces. */
export function normalizeRecoveryCode(input: string): string | undefined {
  const compact = input.toLowerCase().replace(/[\s-]/g, '');
  if (compact.length !== LENGTH || ![...compact].every((c) => ALPHABET.includes(c))) return undefined;
  return `${compact.slice(0, 5)}-${compact.slice(5)}`;
}
