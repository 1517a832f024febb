// The GraphQL client: urql over HTTP (bearer token, refreshed before expiry and once more on a 401)
// and graphql-ws for subscriptions (identity in connectionParams, as the router expects).
import { Client, fetchExchange, subscriptionExchange, type AnyVariables, type TypedDocumentNode } from '@urql/core';
import { print } from 'graphql';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { OpsError, unwrap } from './errors';
import { followExecution, type BatchSource, type EventBatch, type FollowOptions, type Follower } from './events';
import { IdleWatcher, type IdleState } from './idle';
import {
  ExecutionEventBatchesDocument,
  ExtendSessionDocument,
  LoginDocument,
  LogoutDocument,
  MeDocument,
  RefreshSessionDocument,
  SessionStatusDocument,
} from './operations';
import { SessionStore, type KeyValueStore, type SessionTokens } from './session';

export interface OpsClientOptions {
  /** The router's GraphQL endpoint, e.g. http://127.0.0.1:4000/graphql. */
  url: string;
  /** Its WebSocket URL (default: url with ws:// / wss://). */
  wsUrl?: string;
  storage?: KeyValueStore | null;
  fetch?: typeof fetch;
  webSocketImpl?: unknown;
}

export interface OpsClient {
  urql: Client;
  ws: WsClient;
  session: SessionStore;
  login(username: string, password: string): Promise<SessionTokens>;
  logout(): Promise<void>;
  query<D, V extends AnyVariables>(doc: TypedDocumentNode<D, V>, variables: V): Promise<D>;
  mutate<D, V extends AnyVariables>(doc: TypedDocumentNode<D, V>, variables: V): Promise<D>;
  /** Follow a run's event batches, resuming after the last seq when the connection drops. */
  followExecution(executionId: string, opts: FollowOptions & { maxBatch?: number }): Follower;
  /** Watch the idle timeout of the current session. */
  watchIdle(onChange: (s: IdleState) => void): IdleWatcher;
  dispose(): void;
}

function toWsUrl(url: string): string {
  return url.replace(/^http/, 'ws');
}

export function createOpsClient(opts: OpsClientOptions): OpsClient {
  const baseFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const session = new SessionStore(opts.storage === undefined ? undefined : opts.storage);

  // A fetch that adds the bearer token; a 401 means the access token was refused: refresh once and retry.
  const authFetch: typeof fetch = async (input, init) => {
    const send = (token: string | null) => {
      const headers = new Headers(init?.headers);
      if (token) headers.set('authorization', `Bearer ${token}`);
      return baseFetch(input, { ...init, headers });
    };
    const token = await session.accessToken();
    const res = await send(token);
    if (res.status === 401 && token && session.current) {
      try {
        const next = await session.refresh();
        return send(next.accessToken);
      } catch {
        return res;
      }
    }
    return res;
  };

  const ws = createWsClient({
    url: opts.wsUrl ?? toWsUrl(opts.url),
    lazy: true,
    // our follower resumes by afterSeq itself; a blind re-subscribe would replay from the old seq
    retryAttempts: 0,
    connectionParams: async () => {
      const token = await session.accessToken();
      return token ? { authorization: `Bearer ${token}` } : {};
    },
    ...(opts.webSocketImpl ? { webSocketImpl: opts.webSocketImpl } : {}),
  });

  const urql = new Client({
    url: opts.url,
    fetch: authFetch,
    requestPolicy: 'network-only',
    preferGetMethod: false,
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });

  const run = async <D, V extends AnyVariables>(kind: 'query' | 'mutation', doc: TypedDocumentNode<D, V>, variables: V) => {
    const result = await (kind === 'query' ? urql.query(doc, variables) : urql.mutation(doc, variables)).toPromise();
    if (result.error) {
      const err = OpsError.fromCombined(result.error);
      if (err.kind === 'auth') session.clear();
      throw err;
    }
    return result.data as D;
  };

  session.refreshFn = async (refreshToken) => {
    const res = await urql.mutation(RefreshSessionDocument, { refreshToken }).toPromise();
    if (res.error) throw OpsError.fromCombined(res.error);
    const ok = unwrap(res.data?.refreshSession, 'LoginSuccess');
    // the token's user is the same; keep the profile read at login (roles change with the next login)
    const user = session.current?.user ?? { id: ok.user.id, username: '', roles: [], permissions: [] };
    return { ...ok, user };
  };
  session.start();

  const source = (executionId: string, maxBatch: number): BatchSource => (afterSeq, sink) =>
    ws.subscribe<{ executionEventBatches: EventBatch }>(
      { query: print(ExecutionEventBatchesDocument), variables: { executionId, afterSeq, maxBatch } },
      {
        next(result) {
          if (result.errors?.length) sink.error(new OpsError(result.errors.map((e) => e.message).join('; '), 'graphql'));
          else if (result.data) sink.next(result.data.executionEventBatches);
        },
        error(err) {
          sink.error(err instanceof Error ? err : new OpsError('connection lost', 'network'));
        },
        complete() {
          sink.complete();
        },
      },
    );

  return {
    urql,
    ws,
    session,
    async login(username, password) {
      const data = await run('mutation', LoginDocument, { username, password });
      const ok = unwrap(data.login, 'LoginSuccess');
      // the user entity needs a token: read who we are (roles, permissions) with the new one
      const headers = { authorization: `Bearer ${ok.accessToken}` };
      const me = await urql.query(MeDocument, {}, { fetchOptions: { headers } }).toPromise();
      if (me.error || !me.data?.me) throw me.error ? OpsError.fromCombined(me.error) : new OpsError('no user', 'auth');
      const tokens: SessionTokens = { ...ok, user: me.data.me };
      session.set(tokens);
      return tokens;
    },
    async logout() {
      try {
        if (session.current) await run('mutation', LogoutDocument, {});
      } finally {
        session.clear();
        ws.terminate();
      }
    },
    query: (doc, variables) => run('query', doc, variables),
    mutate: (doc, variables) => run('mutation', doc, variables),
    followExecution(executionId, o) {
      return followExecution(source(executionId, o.maxBatch ?? 2000), o);
    },
    watchIdle(onChange) {
      const watcher = new IdleWatcher({
        fetchStatus: async () => (await run('query', SessionStatusDocument, {})).sessionStatus,
        extend: async () => {
          const data = await run('mutation', ExtendSessionDocument, {});
          return unwrap(data.extendSession, 'SessionStatus');
        },
        onChange,
      });
      watcher.start();
      return watcher;
    },
    dispose() {
      session.stop();
      ws.dispose();
    },
  };
}
