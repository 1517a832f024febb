// Rate limits shared by every router replica: fixed windows counted in Redis (one atomic Lua
// script per hit), per client IP for every HTTP request, stricter per IP for `login`, and per
// verified user (JWT `sub`) for every operation, subscriptions included. Over a limit the client
// gets HTTP 429 with `Retry-After` and a GraphQL error whose code is RATE_LIMITED.
//
// Without OPSC_REDIS_URL (make dev) or while Redis is unreachable, the counters live in this
// process: limits still hold per replica, and the log says so once.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { GraphQLError, Kind, parse, type DocumentNode } from 'graphql';
import { Redis } from 'ioredis';

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

// INCR the window's counter, set its expiry on the first hit, return [count, ms left].
const HIT_SCRIPT = `
local c = redis.call('INCR', KEYS[1])
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

  async hit(key: string): Promise<Hit> {
    const full = this.settings.keyPrefix + key;
    if (this.redis && this.redis.status === 'ready') {
      try {
        const [count, ttl] = (await (this.redis as any).opscHit(full, this.settings.windowMs)) as [number, number];
        this.warned = false;
        return { count, resetMs: ttl };
      } catch (err) {
        this.warnOnce(`rate limits: Redis failed (${(err as Error).message}); counting in this process`);
      }
    } else if (this.redis) {
      this.warnOnce('rate limits: Redis not connected; counting in this process until it is');
    }
    return this.hitLocal(full);
  }

  private hitLocal(key: string): Hit {
    const now = Date.now();
    let entry = this.local.get(key);
    if (!entry || entry.until <= now) {
      entry = { count: 0, until: now + this.settings.windowMs };
      this.local.set(key, entry);
      if (this.local.size > 100_000) {
        for (const [k, v] of this.local) if (v.until <= now) this.local.delete(k);
      }
    }
    entry.count += 1;
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

/** True when the request's GraphQL document calls the root mutation field `login`. */
export function callsLogin(query: unknown): boolean {
  if (typeof query !== 'string' || !query.includes('login')) return false;
  let doc: DocumentNode;
  try {
    doc = parse(query, { noLocation: true, maxTokens: 10_000 });
  } catch {
    return false; // the gateway reports the syntax error itself
  }
  return doc.definitions.some(
    (d) =>
      d.kind === Kind.OPERATION_DEFINITION &&
      d.operation === 'mutation' &&
      d.selectionSet.selections.some((s) => s.kind === Kind.FIELD && s.name.value === 'login'),
  );
}

function clientIp(context: Record<string, any>, request: Request, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = request.headers.get('x-forwarded-for');
    if (forwarded) return forwarded.split(',')[0].trim();
  }
  return (
    context?.req?.socket?.remoteAddress ||
    context?.req?.connection?.remoteAddress ||
    context?.socket?.remoteAddress ||
    'unknown'
  );
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
      if (callsLogin(params.query)) {
        const login = await counters.hit(`login:${ip}`);
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
