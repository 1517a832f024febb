// Router -> subgraph subscriptions over graphql-transport-ws, for OpsConductor's Strawberry subgraphs.
//
// Replaces the stock `@graphql-mesh/transport-ws` for kind "ws" because its graphql-ws client
// cannot be configured and retries a connection the subgraph refused with 4403 Forbidden
// (Strawberry's ConnectionRejectionError, e.g. a revoked token) five times with exponential
// backoff: the client's subscription then hangs for about a minute before it fails. Here a
// 4403 fails the subscription at once with a GraphQL error; other closes retry as before.
//
// Identity: connectionParams { authorization: "Bearer <verified token>", x-correlation-id }
// are taken from the gateway context (set by useOpscIdentity in gateway.config.ts). One
// upstream connection per (URL, connectionParams), closed 3 s after its last operation ends.
import { buildGraphQLWSExecutor } from '@graphql-tools/executor-graphql-ws';
import { CloseCode, createClient, type Client } from 'graphql-ws';
import { WebSocket } from 'isows';

type Executor = ReturnType<typeof buildGraphQLWSExecutor>;
// The gateway's executor contract, loosely: it hands us a request with the gateway context.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ExecutionRequest = { context?: any } & Record<string, any>;
interface ExecutionResult {
  data?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  errors?: ReadonlyArray<{ message: string; extensions?: Record<string, unknown> }>;
}

interface WsTransportEntry {
  subgraph: string;
  location?: string;
  options?: { connectionParams?: Record<string, string> };
}

interface IdentityContext {
  opscAuthorization?: string;
  opscCorrelationId?: string;
}

const CORRELATION_HEADER = 'x-correlation-id';

function toWsUrl(url: string): string {
  if (url.startsWith('https://')) return 'wss://' + url.slice('https://'.length);
  if (url.startsWith('http://')) return 'ws://' + url.slice('http://'.length);
  return url;
}

function isCloseEvent(e: unknown): e is { code: number; reason: string } {
  return typeof e === 'object' && e !== null && 'code' in e && 'reason' in e;
}

function errorResult(subgraph: string, err: unknown): ExecutionResult {
  // A graphql-transport-ws "error" message (e.g. a permission class denying the subscription
  // before it starts) arrives as the subgraph's GraphQL errors: pass them on with their codes.
  if (Array.isArray(err)) {
    const errors = err.map((e: { message?: unknown; path?: unknown; extensions?: Record<string, unknown> }) => ({
      message: String(e?.message ?? 'subscription failed'),
      ...(Array.isArray(e?.path) ? { path: e.path } : {}),
      extensions: { ...(e?.extensions ?? {}), serviceName: subgraph },
    }));
    return { errors } as unknown as ExecutionResult;
  }
  if (isCloseEvent(err)) {
    const forbidden = err.code === CloseCode.Forbidden;
    return {
      errors: [
        {
          message: forbidden
            ? `Subgraph "${subgraph}" refused the subscription: ${err.reason || 'Forbidden'}`
            : `Subscription connection to subgraph "${subgraph}" closed (${err.code} ${err.reason})`,
          extensions: { code: forbidden ? 'FORBIDDEN' : 'SUBGRAPH_CONNECTION_CLOSED', serviceName: subgraph },
        },
      ],
    } as unknown as ExecutionResult;
  }
  // A socket error arrives as an ErrorEvent-like object ({ type, message, error }).
  const e = err as { message?: unknown; error?: { message?: unknown } } | null;
  const detail = String(e?.message || e?.error?.message || (err instanceof Error ? err.message : 'connection error'));
  return {
    errors: [
      {
        message: `Cannot reach subgraph "${subgraph}" for the subscription: ${detail}`,
        extensions: { code: 'SUBGRAPH_CONNECTION_ERROR', serviceName: subgraph },
      },
    ],
  } as unknown as ExecutionResult;
}

// Turns a failure of the upstream iterator into one error result, keeping return()
// immediate (an async generator would defer it until the next upstream event).
function guard(subgraph: string, it: AsyncIterableIterator<ExecutionResult>): AsyncIterableIterator<ExecutionResult> {
  let finished = false;
  const guarded: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]() {
      return guarded;
    },
    async next() {
      if (finished) return { done: true, value: undefined };
      try {
        return await it.next();
      } catch (err) {
        finished = true;
        return { done: false, value: errorResult(subgraph, err) };
      }
    },
    async return(value?: unknown) {
      finished = true;
      if (it.return) await it.return(value).catch(() => undefined);
      return { done: true, value: value as ExecutionResult };
    },
    async throw(err?: unknown) {
      finished = true;
      if (it.return) await it.return().catch(() => undefined);
      throw err;
    },
  };
  return guarded;
}

function connectionParamsFor(context: unknown): Record<string, string> {
  const ctx = (context ?? {}) as IdentityContext;
  const params: Record<string, string> = {};
  if (ctx.opscAuthorization) params.authorization = ctx.opscAuthorization;
  if (ctx.opscCorrelationId) params[CORRELATION_HEADER] = ctx.opscCorrelationId;
  return params;
}

export function getSubgraphExecutor({ transportEntry }: { transportEntry: WsTransportEntry }) {
  if (!transportEntry.location) {
    throw new Error(`ws transport: subgraph "${transportEntry.subgraph}" has no location`);
  }
  const wsUrl = toWsUrl(transportEntry.location);
  const subgraph = transportEntry.subgraph;
  const executors = new Map<string, { client: Client; executor: Executor }>();

  function executorFor(connectionParams: Record<string, string>) {
    const key = JSON.stringify(connectionParams);
    let entry = executors.get(key);
    if (!entry) {
      const client = createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        connectionParams,
        lazy: true,
        lazyCloseTimeout: 3000,
        retryAttempts: 5,
        // 4403: the subgraph refused these credentials; retrying cannot help.
        shouldRetry: (e) => isCloseEvent(e) && e.code !== CloseCode.Forbidden,
        on: {
          closed: () => {
            if (executors.get(key)?.client === client) executors.delete(key);
          },
        },
      });
      entry = { client, executor: buildGraphQLWSExecutor(client) };
      executors.set(key, entry);
    }
    return entry.executor;
  }

  const executor = (request: ExecutionRequest) => {
    const run = executorFor(connectionParamsFor(request.context));
    const result = run(request as Parameters<Executor>[0]) as unknown;
    if (result && typeof result === 'object' && Symbol.asyncIterator in result) {
      return guard(subgraph, result as AsyncIterableIterator<ExecutionResult>);
    }
    return Promise.resolve(result as Promise<ExecutionResult>).catch((err) => errorResult(subgraph, err));
  };
  return Object.assign(executor as unknown as Executor, {
    async [Symbol.asyncDispose]() {
      const all = [...executors.values()];
      executors.clear();
      await Promise.all(all.map(({ client }) => client.dispose()));
    },
  });
}

export default { getSubgraphExecutor };
