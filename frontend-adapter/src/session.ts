// Tokens of the signed-in user: kept in sessionStorage (per tab), refreshed before the access token
// expires; every refresh rotates the refresh token (single use), so refreshes are single-flight.
import { OpsError } from './errors';

export interface SessionUser {
  id: string;
  username: string;
  displayName?: string | null;
  roles: string[];
  permissions: string[];
}

export interface SessionTokens {
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: string;
  sessionId: string;
  user: SessionUser;
}

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const KEY = 'opsconductor.session';

/** Does the user hold `perm` (`resource:action`)? `*` and `resource:*` grant everything below. */
export function hasPermission(user: Pick<SessionUser, 'permissions'> | null | undefined, perm: string): boolean {
  if (!user) return false;
  const [resource] = perm.split(':');
  return user.permissions.some((p) => p === '*' || p === perm || p === `${resource}:*`);
}

export type RefreshFn = (refreshToken: string) => Promise<SessionTokens>;

export class SessionStore {
  private tokens: SessionTokens | null;
  private inflight: Promise<SessionTokens> | null = null;
  private listeners = new Set<(t: SessionTokens | null) => void>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  refreshFn: RefreshFn | null = null;

  constructor(
    private readonly storage: KeyValueStore | null = typeof sessionStorage !== 'undefined' ? sessionStorage : null,
    /** Refresh this many ms before the access token expires. */
    private readonly leadMs = 60_000,
    private readonly now: () => number = () => Date.now(),
  ) {
    const raw = storage?.getItem(KEY);
    this.tokens = raw ? (JSON.parse(raw) as SessionTokens) : null;
  }

  get current(): SessionTokens | null {
    return this.tokens;
  }

  subscribe(fn: (t: SessionTokens | null) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  set(tokens: SessionTokens | null): void {
    this.tokens = tokens;
    if (tokens) this.storage?.setItem(KEY, JSON.stringify(tokens));
    else this.storage?.removeItem(KEY);
    this.schedule();
    for (const fn of this.listeners) fn(tokens);
  }

  clear(): void {
    this.set(null);
  }

  /** ms until the access token expires (negative when it has). */
  expiresInMs(): number {
    return this.tokens ? Date.parse(this.tokens.accessTokenExpiresAt) - this.now() : -1;
  }

  /** A valid access token, refreshing first when it is (nearly) expired. */
  async accessToken(): Promise<string | null> {
    if (!this.tokens) return null;
    if (this.expiresInMs() <= this.leadMs / 2) {
      try {
        return (await this.refresh()).accessToken;
      } catch {
        return this.tokens?.accessToken ?? null;
      }
    }
    return this.tokens.accessToken;
  }

  /** Exchange the refresh token; concurrent callers share one request (the old token is single use). */
  refresh(): Promise<SessionTokens> {
    if (this.inflight) return this.inflight;
    const current = this.tokens;
    if (!current || !this.refreshFn) return Promise.reject(new OpsError('Not logged in', 'auth'));
    const fn = this.refreshFn;
    this.inflight = fn(current.refreshToken)
      .then((next) => {
        this.set(next);
        return next;
      })
      .catch((err: unknown) => {
        if (err instanceof OpsError && (err.kind === 'auth' || err.kind === 'result')) this.clear();
        throw err;
      })
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.tokens || !this.refreshFn) return;
    const wait = Math.max(1_000, this.expiresInMs() - this.leadMs);
    this.timer = setTimeout(() => {
      this.refresh().catch(() => undefined);
    }, wait);
  }

  /** Start the background refresh timer (after refreshFn is set). */
  start(): void {
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
