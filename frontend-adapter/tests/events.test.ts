import { describe, expect, it, vi } from 'vitest';
import { followExecution, type BatchSink, type ExecEvent } from '../src/events';

const ev = (seq: number, type = 'STDOUT'): ExecEvent => ({ seq, type, data: `line ${seq}\n`, at: '2026-01-01T00:00:00Z' });

describe('followExecution', () => {
  it('resumes after the last seq when the connection drops, without duplicates', async () => {
    vi.useFakeTimers();
    const calls: number[] = [];
    const sinks: BatchSink[] = [];
    const got: number[] = [];
    const states: string[] = [];
    followExecution(
      (afterSeq, sink) => {
        calls.push(afterSeq);
        sinks.push(sink);
        return () => undefined;
      },
      { onEvents: (events) => got.push(...events.map((e) => e.seq)), onState: (s) => states.push(s), retryDelaysMs: [10] },
    );
    sinks[0].next({ lastSeq: 3, finished: false, events: [ev(1), ev(2), ev(3)] });
    sinks[0].error(new Error('socket closed'));
    expect(states).toContain('reconnecting');
    await vi.advanceTimersByTimeAsync(20);
    expect(calls).toEqual([0, 3]);
    // a server that replays an overlapping event is de-duplicated
    sinks[1].next({ lastSeq: 5, finished: false, events: [ev(3), ev(4), ev(5)] });
    sinks[1].next({ lastSeq: 6, finished: true, events: [ev(6, 'EXECUTION_FINISHED')] });
    sinks[1].complete();
    await vi.advanceTimersByTimeAsync(50);
    expect(got).toEqual([1, 2, 3, 4, 5, 6]);
    expect(calls).toHaveLength(2);
    expect(states.at(-1)).toBe('finished');
    vi.useRealTimers();
  });

  it('re-subscribes when the stream completes before EXECUTION_FINISHED', async () => {
    vi.useFakeTimers();
    const calls: number[] = [];
    const sinks: BatchSink[] = [];
    followExecution(
      (afterSeq, sink) => {
        calls.push(afterSeq);
        sinks.push(sink);
        return () => undefined;
      },
      { afterSeq: 10, onEvents: () => undefined, retryDelaysMs: [5] },
    );
    sinks[0].next({ lastSeq: 12, finished: false, events: [ev(11), ev(12)] });
    sinks[0].complete();
    await vi.advanceTimersByTimeAsync(10);
    expect(calls).toEqual([10, 12]);
    vi.useRealTimers();
  });

  it('stop() unsubscribes and never reconnects', async () => {
    vi.useFakeTimers();
    const unsub = vi.fn();
    let count = 0;
    let sink: BatchSink | undefined;
    const f = followExecution(
      (_after, s) => {
        count += 1;
        sink = s;
        return unsub;
      },
      { onEvents: () => undefined, retryDelaysMs: [5] },
    );
    f.stop();
    sink?.error(new Error('x'));
    await vi.advanceTimersByTimeAsync(20);
    expect(unsub).toHaveBeenCalled();
    expect(count).toBe(1);
    vi.useRealTimers();
  });
});
