import { describe, expect, it } from 'vitest';
import { OpsError } from '../src/errors';
import { hasPermission, SessionStore, type KeyValueStore, type SessionTokens } from '../src/session';

class MemoryStorage implements KeyValueStore {
  m = new Map<string, string>();
  getItem(k: string) { return this.m.get(k) ?? null; }
  setItem(k: string, v: string) { this.m.set(k, v); }
  removeItem(k: string) { this.m.delete(k); }
}

const tokens = (n: number, expiresInMs: number): SessionTokens => ({
  accessToken: `access-${n}`,
  refreshToken: `refresh-${n}`,
  accessTokenExpiresAt: new Date(Date.now() + expiresInMs).toISOString(),
  sessionId: 's',
  user: { id: 'u', username: 'admin', roles: ['admin'], permissions: ['*'] },
});

describe('SessionStore', () => {
  it('rotates the refresh token once for concurrent callers (single use)', async () => {
    const store = new SessionStore(new MemoryStorage(), 60_000);
    store.set(tokens(1, 10_000)); // nearly expired
    const used: string[] = [];
    store.refreshFn = async (rt) => {
      used.push(rt);
      await new Promise((r) => setTimeout(r, 5));
      return tokens(used.length + 1, 900_000);
    };
    const [a, b, c] = await Promise.all([store.accessToken(), store.accessToken(), store.accessToken()]);
    expect(used).toEqual(['refresh-1']);
    expect(new Set([a, b, c])).toEqual(new Set(['access-2']));
    expect(store.current?.refreshToken).toBe('refresh-2');
    // a fresh token is used as is
    expect(await store.accessToken()).toBe('access-2');
    expect(used).toHaveLength(1);
    store.stop();
  });

  it('forgets the session when the refresh token is refused', async () => {
    const storage = new MemoryStorage();
    const store = new SessionStore(storage, 60_000);
    store.set(tokens(1, 1_000));
    store.refreshFn = async () => {
      throw new OpsError('invalid refresh token', 'result', { typename: 'InvalidRefreshToken' });
    };
    await expect(store.refresh()).rejects.toThrow('invalid refresh token');
    expect(store.current).toBeNull();
    expect(storage.m.size).toBe(0);
  });

  it('survives a reload through its storage', () => {
    const storage = new MemoryStorage();
    new SessionStore(storage).set(tokens(7, 900_000));
    const again = new SessionStore(storage);
    expect(again.current?.accessToken).toBe('access-7');
    again.stop();
  });
});

describe('hasPermission', () => {
  it('understands * and resource:*', () => {
    expect(hasPermission({ permissions: ['*'] }, 'targets:write')).toBe(true);
    expect(hasPermission({ permissions: ['targets:*'] }, 'targets:write')).toBe(true);
    expect(hasPermission({ permissions: ['targets:read'] }, 'targets:write')).toBe(false);
    expect(hasPermission(null, 'targets:read')).toBe(false);
  });
});
