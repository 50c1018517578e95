import type { Clock } from '../../src/shared/clock.ts';

/** A clock that runs with real time and can be moved forward, so tests never sleep through a wait. */
export interface MovableClock extends Clock {
  advance(ms: number): void;
}

export function movableClock(): MovableClock {
  let offset = 0;
  return Object.assign(() => Date.now() + offset, {
    advance(ms: number) {
      offset += ms;
    },
  });
}
