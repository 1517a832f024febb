import { describe, expect, it, vi } from 'vitest';
import { IdleWatcher, type IdleState } from '../src/idle';

describe('IdleWatcher', () => {
  it('warns inside the window and extend() clears the warning', async () => {
    vi.useFakeTimers();
    const now = () => Date.now();
    const states: IdleState[] = [];
    let ends = now() + 100_000;
    const w = new IdleWatcher({
      fetchStatus: async () => ({ sessionId: 's', remainingSeconds: 100, warning: true, endsAt: new Date(ends).toISOString() }),
      extend: async () => {
        ends = now() + 1_800_000;
        return { sessionId: 's', remainingSeconds: 1800, warning: false, endsAt: new Date(ends).toISOString() };
      },
      onChange: (s) => states.push(s),
    });
    w.start();
    await vi.advanceTimersByTimeAsync(1_100);
    expect(states.at(-1)?.warning).toBe(true);
    expect(states.at(-1)?.remainingSeconds).toBeLessThanOrEqual(100);
    await w.extend();
    expect(states.at(-1)?.warning).toBe(false);
    expect(states.at(-1)?.remainingSeconds).toBeGreaterThan(1700);
    w.stop();
    vi.useRealTimers();
  });

  it('reports the end when the time is up', async () => {
    vi.useFakeTimers();
    const states: IdleState[] = [];
    const ends = Date.now() + 3_000;
    const w = new IdleWatcher({
      fetchStatus: async () => ({ sessionId: 's', remainingSeconds: 3, warning: true, endsAt: new Date(ends).toISOString() }),
      extend: async () => { throw new Error('no'); },
      onChange: (s) => states.push(s),
      maxPollMs: 60_000,
    });
    w.start();
    await vi.advanceTimersByTimeAsync(4_000);
    expect(states.at(-1)?.ended).toBe(true);
    w.stop();
    vi.useRealTimers();
  });
});
