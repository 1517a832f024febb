// Session idle timeout: auth ends a session after a period without activity. The watcher asks
// `sessionStatus` now and then, raises a warning inside auth's warning window and offers extend.

export interface SessionStatusValue {
  sessionId: string;
  remainingSeconds: number;
  warning: boolean;
  endsAt: string;
}

export interface IdleState {
  /** Seconds left (counted down locally between checks). */
  remainingSeconds: number;
  warning: boolean;
  ended: boolean;
}

export interface IdleWatcherOptions {
  fetchStatus: () => Promise<SessionStatusValue>;
  extend: () => Promise<SessionStatusValue>;
  onChange: (s: IdleState) => void;
  /** Longest time between two server checks (ms). */
  maxPollMs?: number;
  tickMs?: number;
  now?: () => number;
}

export class IdleWatcher {
  private endsAt = 0;
  private warning = false;
  private nextCheck = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private checking = false;
  private readonly now: () => number;

  constructor(private readonly opts: IdleWatcherOptions) {
    this.now = opts.now ?? (() => Date.now());
  }

  start(): void {
    void this.check();
    this.timer = setInterval(() => this.tick(), this.opts.tickMs ?? 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** "Stay logged in": restart the idle timer on the server. */
  async extend(): Promise<void> {
    this.apply(await this.opts.extend());
  }

  private apply(s: SessionStatusValue): void {
    this.endsAt = Date.parse(s.endsAt);
    this.warning = s.warning;
    const remainingMs = Math.max(0, this.endsAt - this.now());
    // check again soon when near the end, else at the longest interval
    this.nextCheck = this.now() + Math.min(this.opts.maxPollMs ?? 30_000, Math.max(2_000, remainingMs / 4));
    this.emit();
  }

  private emit(): void {
    const remainingSeconds = Math.max(0, Math.round((this.endsAt - this.now()) / 1000));
    this.opts.onChange({ remainingSeconds, warning: this.warning || remainingSeconds <= 0, ended: remainingSeconds <= 0 && this.endsAt > 0 });
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      this.apply(await this.opts.fetchStatus());
    } catch {
      this.nextCheck = this.now() + 5_000;
    } finally {
      this.checking = false;
    }
  }

  private tick(): void {
    if (this.now() >= this.nextCheck) void this.check();
    else if (this.endsAt) this.emit();
  }
}
