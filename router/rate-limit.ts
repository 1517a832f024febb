// Rate limits shared by every router replica: fixed windows counted in Redis (one atomic Lua
// script per hit), per client IP for every HTTP request, stricter per IP for `login`, and per
// verified user (JWT `sub`) for every operation, subscriptions included. Over a limit the client
// gets HTTP 429 with `Retry-After` and a GraphQL error whose code is RATE_LIMITED.
//
// Without OPSC_REDIS_URL (make dev) or while Redis is unreachable, the counters live in this
// process: limits still hold per replica, and the log says so once.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { GraphQLError, Kind, parse, type DocumentNode, type SelectionSetNode } from 'graphql';
import { Redis } from 'ioredis';
import { clientIp } from './client-ip.ts';

export interface RateLimitSettings {
  enabled: boolean;
  redisUrl?: string;
  windowMs: number;
  perIp: number;
  perUser: number;
  loginPerIp: number;
  trustProxy: boolean;
  keyPrefix: string;
}

export function rateLimitSettingsFromEnv(env: NodeJS.ProcessEnv): RateLimitSettings {
  const num = (name: string, fallback: number) => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isFinite(value) || value < 1) throw new Error(`${name} must be a positive number, got "${raw}"`);
    return value;
  };
  return {
    enabled: !['0', 'off', 'false', 'no'].includes((env.OPSC_ROUTER_RATE_LIMIT || 'on').toLowerCase()),
    redisUrl: env.OPSC_REDIS_URL || undefined,
    windowMs: num('OPSC_ROUTER_RATE_LIMIT_WINDOW_SECONDS', 60) * 1000,
    perIp: num('OPSC_ROUTER_RATE_LIMIT_PER_IP', 1200),
    perUser: num('OPSC_ROUTER_RATE_LIMIT_PER_USER', 600),
    loginPerIp: num('OPSC_ROUTER_RATE_LIMIT_LOGIN_PER_IP', 20),
    trustProxy: ['1', 'true', 'yes'].includes((env.OPSC_ROUTER_TRUST_PROXY || '').toLowerCase()),
    keyPrefix: env.OPSC_ROUTER_RATE_LIMIT_PREFIX || 'opsc:rl:',
  };
}

// INCRBY the window's counter (by ARGV[2]), set its expiry on the first hit, return [count, ms left].
const HIT_SCRIPT = `
local c = redis.call('INCRBY', KEYS[1], ARGV[2])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}`;

interface Hit {
  count: number;
  resetMs: number;
}

class Counters {
  private redis?: Redis;
  private local = new Map<string, { count: number; until: number }>();
  private warned = false;

  constructor(
    private readonly settings: RateLimitSettings,
    private readonly log: (msg: string) => void,
  ) {
    if (settings.redisUrl) {
      this.redis = new Redis(settings.redisUrl, {
        lazyConnect: false,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: 500,
        connectTimeout: 2000,
        retryStrategy: (times) => Math.min(times * 200, 5000),
      });
      this.redis.on('error', () => undefined); // reported once, in hit()
      this.redis.defineCommand('opscHit', { numberOfKeys: 1, lua: HIT_SCRIPT });
    }
  }

  async hit(key: string, by = 1): Promise<Hit> {
    const full = this.settings.keyPrefix + key;
    if (this.redis && this.redis.status === 'ready') {
      try {
        const [count, ttl] = (await (this.redis as any).opscHit(full, this.settings.windowMs, by)) as [number, number];
        this.warned = false;
        return { count, resetMs: ttl };
      } catch (err) {
        this.warnOnce(`rate limits: Redis failed (${(err as Error).message}); counting in this process`);
      }
    } else if (this.redis) {
      this.warnOnce('rate limits: Redis not connected; counting in this process until it is');
    }
    return this.hitLocal(full, by);
  }

  private hitLocal(key: string, by: number): Hit {
    const now = Date.now();
    let entry = this.local.get(key);
    if (!entry || entry.until <= now) {
      entry = { count: 0, until: now + this.settings.windowMs };
      this.local.set(key, entry);
      if (this.local.size > 100_000) {
        for (const [k, v] of this.local) if (v.until <= now) this.local.delete(k);
      }
    }
    entry.count += by;
    return { count: entry.count, resetMs: entry.until - now };
  }

  private warnOnce(msg: string) {
    if (!this.warned) {
      this.warned = true;
      this.log(msg);
    }
  }
}

function rateLimited(what: string, hit: Hit) {
  const retryAfter = Math.max(1, Math.ceil(hit.resetMs / 1000));
  return new GraphQLError(`rate limit exceeded (${what}); retry in ${retryAfter} s`, {
    extensions: {
      code: 'RATE_LIMITED',
      retryAfterSeconds: retryAfter,
      http: { status: 429, headers: { 'retry-after': String(retryAfter) } },
    },
  });
}

/**
 * How many times the request's GraphQL document calls the root mutation field `login` (M1).
 * Every `login` selection counts, aliased or not, also inside inline fragments and fragment
 * spreads (`... on Mutation { login }`, `...F`), so 30 aliased logins cost 30 of the budget.
 * With an operationName only that operation counts; without one, the largest mutation does.
 * Directives (@skip/@include) are ignored: the count is an upper bound.
 */
export function countLogins(query: unknown, operationName?: unknown): number {
  if (typeof query !== 'string' || !query.includes('login')) return 0;
  let doc: DocumentNode;
  try {
    doc = parse(query, { noLocation: true, maxTokens: 10_000 });
  } catch {
    return 0; // the gateway reports the syntax error itself
  }
  const fragments = new Map<string, SelectionSetNode>();
  for (const d of doc.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d.selectionSet);
  }
  // Root fields only: `login` is a field of Mutation, so nested fields are never logins.
  const count = (set: SelectionSetNode, seen: Set<string>): number => {
    let n = 0;
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) {
        if (s.name.value === 'login') n += 1;
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        n += count(s.selectionSet, seen);
      } else if (s.kind === Kind.FRAGMENT_SPREAD) {
        const name = s.name.value;
        const target = fragments.get(name);
        if (target && !seen.has(name)) n += count(target, new Set(seen).add(name)); // cycles fail validation
      }
    }
    return n;
  };
  let most = 0;
  for (const d of doc.definitions) {
    if (d.kind !== Kind.OPERATION_DEFINITION || d.operation !== 'mutation') continue;
    if (typeof operationName === 'string' && operationName && d.name?.value !== operationName) continue;
    most = Math.max(most, count(d.selectionSet, new Set()));
  }
  return most;
}

export function useOpscRateLimits(settings: RateLimitSettings, log: (msg: string) => void): GatewayPlugin {
  if (!settings.enabled) return {};
  const counters = new Counters(settings, log);
  return {
    // Before parsing and authentication: per IP, and the stricter login budget per IP.
    async onParams({ params, request, context, setResult }) {
      const ip = clientIp(context as Record<string, any>, request, settings.trustProxy);
      const all = await counters.hit(`ip:${ip}`);
      if (all.count > settings.perIp) {
        setResult({ errors: [rateLimited(`${settings.perIp} requests per IP`, all)] });
        return;
      }
      const logins = countLogins(params.query, params.operationName);
      if (logins > 0) {
        // Every login field costs one (M1): 30 aliased logins are 30 argon2 verifications.
        const login = await counters.hit(`login:${ip}`, logins);
        if (login.count > settings.loginPerIp) {
          setResult({ errors: [rateLimited(`${settings.loginPerIp} logins per IP`, login)] });
        }
      }
    },
    // After the JWT plugin verified the token: per user (HTTP and WebSocket operations).
    onContextBuilding() {
      return async ({ context }) => {
        const sub = (context as any)?.jwt?.payload?.sub;
        if (typeof sub !== 'string' || !sub) return;
        const user = await counters.hit(`user:${sub}`);
        if (user.count > settings.perUser) throw rateLimited(`${settings.perUser} requests per user`, user);
      };
    },
  };
}
