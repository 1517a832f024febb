// Following a run's events with resume: the stream is a subscription with `afterSeq`; when the
// connection drops before EXECUTION_FINISHED the follower subscribes again after the last seq it
// has, so nothing is lost or shown twice.

export interface ExecEvent {
  seq: number;
  type: string;
  targetId?: string | null;
  stepIndex?: number | null;
  stepName?: string | null;
  data?: string | null;
  exitCode?: number | null;
  status?: string | null;
  at: string;
}

export interface EventBatch {
  lastSeq: number;
  finished: boolean;
  events: ExecEvent[];
}

export interface BatchSink {
  next(batch: EventBatch): void;
  error(err: unknown): void;
  complete(): void;
}

/** Subscribe to batches after `afterSeq`; returns an unsubscribe function. */
export type BatchSource = (afterSeq: number, sink: BatchSink) => () => void;

export type FollowState = 'connecting' | 'live' | 'reconnecting' | 'finished' | 'stopped';

export interface FollowOptions {
  afterSeq?: number;
  onEvents: (events: ExecEvent[], lastSeq: number) => void;
  onState?: (state: FollowState, detail?: string) => void;
  /** Wait before re-subscribing, by attempt (the last value repeats). */
  retryDelaysMs?: number[];
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
}

export interface Follower {
  stop(): void;
  readonly lastSeq: number;
}

export function followExecution(source: BatchSource, opts: FollowOptions): Follower {
  const delays = opts.retryDelaysMs ?? [250, 1000, 2000, 5000];
  let lastSeq = opts.afterSeq ?? 0;
  let attempt = 0;
  let stopped = false;
  let finished = false;
  let unsubscribe: (() => void) | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const setState = (s: FollowState, d?: string) => opts.onState?.(s, d);

  const retry = (why: string) => {
    unsubscribe = null;
    if (stopped || finished) return;
    attempt += 1;
    if (opts.maxAttempts && attempt > opts.maxAttempts) {
      setState('stopped', why);
      return;
    }
    setState('reconnecting', why);
    timer = setTimeout(connect, delays[Math.min(attempt - 1, delays.length - 1)]);
  };

  const connect = () => {
    timer = null;
    if (stopped) return;
    setState(attempt === 0 ? 'connecting' : 'reconnecting');
    let done = false;
    unsubscribe = source(lastSeq, {
      next(batch) {
        if (stopped || done) return;
        attempt = 0;
        const fresh = batch.events.filter((e) => e.seq > lastSeq);
        if (fresh.length) {
          lastSeq = fresh[fresh.length - 1].seq;
          opts.onEvents(fresh, lastSeq);
        }
        if (batch.lastSeq > lastSeq && !fresh.length) lastSeq = batch.lastSeq;
        if (batch.finished) {
          finished = true;
          setState('finished');
        } else setState('live');
      },
      error(err) {
        if (done) return;
        done = true;
        retry(err instanceof Error ? err.message : 'connection lost');
      },
      complete() {
        if (done) return;
        done = true;
        if (!finished) retry('stream ended early');
      },
    });
  };

  connect();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      unsubscribe?.();
      setState('stopped');
    },
    get lastSeq() {
      return lastSeq;
    },
  };
}
