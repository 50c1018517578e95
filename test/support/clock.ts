import type { Clock } from '../../src/shared/clock.ts';

/** A clock that stands still until the test moves it forward, so tests never sleep through a wait. */
export interface MovableClock extends Clock {
  advance(ms: number): void;
}

export function movableClock(): MovableClock {
  let now = Date.now();
  return Object.assign(() => now, {
    advance(ms: number) {
      now += ms;
    },
  });
}
