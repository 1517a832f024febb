// Per-user cap on open subscriptions (M9). Each subscription holds a WebSocket to a subgraph, a
// Redis pub/sub connection and a queue there, and a client may open any number of WebSockets:
// so the router counts the open subscriptions of each verified user (JWT `sub`) over all of
// that user's WebSockets (and SSE streams) in this replica, and refuses one over
// OPSC_ROUTER_MAX_SUBSCRIPTIONS_PER_USER with TOO_MANY_SUBSCRIPTIONS. A subscription stops
// counting when it ends: completed, unsubscribed, failed or its connection closed.
// Anonymous subscriptions are not counted: the subgraphs refuse them.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { GraphQLError } from 'graphql';

export interface SubscriptionLimitSettings {
  perUser: number;
}

export function subscriptionLimitSettingsFromEnv(env: NodeJS.ProcessEnv): SubscriptionLimitSettings {
  const raw = env.OPSC_ROUTER_MAX_SUBSCRIPTIONS_PER_USER;
  const value = raw === undefined || raw === '' ? 100 : Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`OPSC_ROUTER_MAX_SUBSCRIPTIONS_PER_USER must be a positive integer, got "${raw}"`);
  }
  return { perUser: value };
}

type Iter = AsyncIterableIterator<unknown>;

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

// The same stream, calling `release` once when it ends in any way; return() stays immediate.
function releasing(source: AsyncIterable<unknown>, release: () => void): Iter {
  const it = source[Symbol.asyncIterator]() as Iter;
  const wrapped: Iter = {
    [Symbol.asyncIterator]() {
      return wrapped;
    },
    async next() {
      try {
        const step = await it.next();
        if (step.done) release();
        return step;
      } catch (err) {
        release();
        throw err;
      }
    },
    async return(value?: unknown) {
      release();
      return it.return ? it.return(value) : { done: true, value };
    },
    async throw(err?: unknown) {
      release();
      if (it.throw) return it.throw(err);
      throw err;
    },
  };
  return wrapped;
}

export function useSubscriptionLimit(settings: SubscriptionLimitSettings): GatewayPlugin {
  const open = new Map<string, number>();
  const take = (user: string) => open.set(user, (open.get(user) ?? 0) + 1);
  const give = (user: string) => {
    const n = (open.get(user) ?? 1) - 1;
    if (n > 0) open.set(user, n);
    else open.delete(user);
  };
  return {
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      const sub = (args.contextValue as any)?.jwt?.payload?.sub; // eslint-disable-line @typescript-eslint/no-explicit-any
      if (typeof sub !== 'string' || !sub) return;
      // Counted when the subscription really starts (not if another plugin stopped it first).
      setSubscribeFn(async (subscribeArgs) => {
        if ((open.get(sub) ?? 0) >= settings.perUser) {
          return {
            errors: [
              new GraphQLError(
                `too many open subscriptions: at most ${settings.perUser} per user; close one before opening another`,
                { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', limit: settings.perUser } },
              ),
            ],
          };
        }
        take(sub);
        let released = false;
        const release = () => {
          if (!released) {
            released = true;
            give(sub);
          }
        };
        try {
          const result = await subscribeFn(subscribeArgs);
          if (isAsyncIterable(result)) return releasing(result, release) as typeof result;
          release(); // an error result: nothing stays open
          return result;
        } catch (err) {
          release();
          throw err;
        }
      });
    },
  };
}
