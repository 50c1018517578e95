/** Milliseconds since the epoch. Injected where time decides an outcome, so tests move it instead of sleeping. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
