// OpsConductor router: Hive Gateway serving the composed supergraph (see README.md).
//
// Start: `npm start` in router/ (= `hive-gateway supergraph ./supergraph.graphql`).
// Every setting below that differs between environments comes from an OPSC_* env var.
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createRemoteJwksSigningKeyProvider,
  defineConfig,
  extractFromHeader,
  HTTPTransport,
  type GatewayPlugin,
} from '@graphql-hive/gateway';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { clientIp, forwardedIpHeaders } from './client-ip.ts';
import { defaultCollections } from './laboratory.ts';
import { costLimitSettingsFromEnv, useCostLimit } from './cost-limit.ts';
import { rateLimitSettingsFromEnv, useOpscRateLimits } from './rate-limit.ts';
import { subscriptionLimitSettingsFromEnv, useSubscriptionLimit } from './subscription-limit.ts';
import opscWsTransport from './ws-transport.ts';

const env = process.env;
const HERE = dirname(fileURLToPath(import.meta.url));

const supergraphPath = (() => {
  const p = env.OPSC_SUPERGRAPH_PATH || './supergraph.graphql';
  return isAbsolute(p) ? p : resolve(HERE, p);
})();

const jwksUrl = env.OPSC_JWKS_URL || 'http://127.0.0.1:3000/.well-known/jwks.json';
const jwtIssuer = env.OPSC_JWT_ISSUER || 'opsconductor-auth';
const jwtAudience = env.OPSC_JWT_AUDIENCE || 'opsconductor';
const port = Number(env.OPSC_ROUTER_PORT || 4000);
const host = env.OPSC_ROUTER_HOST || '127.0.0.1';
const maxDepth = Number(env.OPSC_ROUTER_MAX_DEPTH || 15);
const maxTokens = Number(env.OPSC_ROUTER_MAX_TOKENS || 4000);
const maxAliases = Number(env.OPSC_ROUTER_MAX_ALIASES || 30);
// CORS allow-list. Default: the router's own origin, the React UI as `make dev` serves it
// (OPSC_UI_PORT, default 8080) and its Vite dev server (5173); never `*`
// (credentials are allowed, so every allowed origin is named).
const corsOrigins = (
  env.OPSC_CORS_ORIGINS ||
  [port, Number(env.OPSC_UI_PORT || 8080), 5173]
    .flatMap((p) => [`http://127.0.0.1:${p}`, `http://localhost:${p}`])
    .join(',')
)
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s && s !== '*');
const rateLimits = rateLimitSettingsFromEnv(env);
const costLimit = costLimitSettingsFromEnv(env);
const subscriptionLimit = subscriptionLimitSettingsFromEnv(env);
// Shared with auth: signs the client IP the router forwards (client-ip.ts). `make dev` and the
// test fixtures make a random one per start; unset, subgraphs get the IP unsigned.
const clientIpSecret = env.OPSC_CLIENT_IP_SECRET || undefined;

// ---------------------------------------------------------------------------
// Subgraph locations: the supergraph carries the default URLs (127.0.0.1:<port>);
// OPSC_<NAME>_URL overrides one at run time (tests run subgraphs on other ports).
// Names are read from the supergraph itself so a new subgraph needs no edit here.
// ---------------------------------------------------------------------------
function subgraphNames(): string[] {
  try {
    const sdl = readFileSync(supergraphPath, 'utf8');
    return [...sdl.matchAll(/@join__graph\(\s*name:\s*"([^"]+)"/g)].map((m) => m[1]);
  } catch {
    return []; // the gateway itself reports a missing supergraph and exits
  }
}

const locationOverrides: Record<string, { location: string }> = {};
for (const name of subgraphNames()) {
  const url = env[`OPSC_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`];
  if (url) locationOverrides[name] = { location: url };
}

// ---------------------------------------------------------------------------
// Identity forwarding. After the JWT plugin verified the token, the context gets
//   opscAuthorization  "Bearer <verified token>" (absent when the client sent none)
//   opscCorrelationId  the client's x-correlation-id, or a generated UUID
//   opscClientIp       the client's address (socket peer; see client-ip.ts)
// which go to subgraphs as HTTP headers (queries/mutations) and as WebSocket
// connectionParams (subscriptions: Strawberry reads only connectionParams there).
// ---------------------------------------------------------------------------
const CORRELATION_HEADER = 'x-correlation-id';

interface OpscContext {
  jwt?: { payload: Record<string, unknown>; token: { value: string; prefix?: string } };
  headers?: Record<string, string>;
  connectionParams?: Record<string, unknown>;
  opscAuthorization?: string;
  opscCorrelationId?: string;
  opscClientIp?: string;
  request?: Request;
}

function useOpscIdentity(): GatewayPlugin<OpscContext> {
  return {
    onContextBuilding() {
      // Runs after every plugin's onContextBuilding, so the JWT plugin has set `jwt`.
      return ({ context, extendContext }) => {
        const ctx = context as unknown as OpscContext;
        const fromClient =
          ctx.headers?.[CORRELATION_HEADER] ??
          (ctx.connectionParams?.[CORRELATION_HEADER] as string | undefined);
        const correlationId =
          typeof fromClient === 'string' && /^[\x21-\x7e]{1,200}$/.test(fromClient)
            ? fromClient
            : ctx.opscCorrelationId || randomUUID();
        const token = ctx.jwt?.token?.value;
        extendContext({
          opscCorrelationId: correlationId,
          opscClientIp: clientIp(ctx as Record<string, any>, ctx.request, rateLimits.trustProxy),
          ...(token ? { opscAuthorization: `Bearer ${token}` } : {}),
        } as never);
      };
    },
  };
}

// Requests whose declared body is over the limit are refused before parsing (413).
const maxBodyBytes = Number(env.OPSC_ROUTER_MAX_BODY_BYTES || 1_000_000);

function useBodyLimit(): GatewayPlugin<OpscContext> {
  return {
    onRequest({ request, endResponse, fetchAPI }) {
      const declared = Number(request.headers.get('content-length') || 0);
      if (declared > maxBodyBytes) {
        endResponse(
          new fetchAPI.Response(
            JSON.stringify({
              errors: [{ message: `request body over ${maxBodyBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }],
            }),
            { status: 413, headers: { 'content-type': 'application/json' } },
          ),
        );
      }
    },
  };
}

// Production mode (OPSC_ROUTER_PRODUCTION=1): no GraphiQL/Laboratory page and no introspection.
const production = ['1', 'true', 'yes'].includes((env.OPSC_ROUTER_PRODUCTION || '').toLowerCase());

// The Laboratory (GraphiQL) page: the README's first five operations as a saved collection
// (render-laboratory's `defaultCollections`, an option on top of Yoga's GraphiQL options).
const laboratory = { title: 'OpsConductor GraphQL', defaultCollections };

// Security headers on every HTTP response; the GraphiQL page needs inline scripts and styles.
const SECURITY_HEADERS: Record<string, string> = {
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
    "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'",
};

function useSecurityHeaders(): GatewayPlugin<OpscContext> {
  return {
    onResponse({ response }) {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
        response.headers.set(name, value);
      }
    },
  };
}

// A bearer token from WebSocket connectionParams ("authorization": "Bearer <token>").
// The stock extractFromConnectionParams keeps the "Bearer " prefix, so it cannot be used.
function extractFromWsConnectionParams({ serverContext }: { serverContext?: Record<string, any> }) {
  const params = serverContext?.connectionParams;
  if (!params || typeof params !== 'object') return undefined;
  const raw = params.authorization ?? params.Authorization;
  if (typeof raw !== 'string' || !raw) return undefined;
  const [prefix, token] = raw.trim().split(/\s+/, 2);
  if (prefix !== 'Bearer' || !token) {
    // Same answer as a malformed Authorization header: the request is rejected.
    return { prefix: 'Invalid', token: 'invalid' };
  }
  return { prefix, token };
}

// Signing keys from auth's JWKS. A token whose key id is not (or no longer) in the
// JWKS gets a throw-away key, so it fails verification with 401 "Unauthenticated"
// instead of a masked 500. When the JWKS cannot be fetched at all, tokens fail with
// a masked internal error (and the router log says why); anonymous requests still pass.
const jwksProvider = createRemoteJwksSigningKeyProvider({
  jwksUri: jwksUrl,
  cache: true,
  cacheMaxAge: 10 * 60 * 1000,
  rateLimit: true,
  jwksRequestsPerMinute: 30,
  timeout: 5000,
});
let throwAwayKey: KeyObject | undefined;
async function signingKey(kid?: string) {
  try {
    return await jwksProvider(kid as string);
  } catch (err) {
    const name = (err as Error)?.name;
    if (name === 'SigningKeyNotFoundError' || name === 'JwksRateLimitError') {
      throwAwayKey ??= generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
      return throwAwayKey.export({ type: 'spki', format: 'pem' }) as string;
    }
    throw err;
  }
}

export const gatewayConfig = defineConfig({
  supergraph: supergraphPath,
  host,
  port,
  graphqlEndpoint: '/graphql',
  healthCheckEndpoint: '/healthcheck',
  readinessCheckEndpoint: '/readiness',
  playgroundName: 'OpsConductor GraphQL',
  graphiql: production ? false : laboratory,
  ...(production ? { disableIntrospection: { disableIf: () => true } } : {}),
  // Simple (non-preflighted) requests, e.g. a form POST from another site, need this header.
  csrfPrevention: { requestHeaders: ['x-graphql-csrf'] },
  landingPage: false,
  contentEncoding: true,
  // Level: OPSC_ROUTER_LOG_LEVEL (debug|info|warn|error). JSON lines with LOG_JSON=1, no colours with NO_COLOR=1.
  logging: (env.OPSC_ROUTER_LOG_LEVEL || env.LOG_LEVEL || 'info') as 'debug' | 'info' | 'warn' | 'error',
  cors: {
    origin: corsOrigins,
    credentials: true,
    allowedHeaders: ['authorization', 'content-type', 'x-correlation-id', 'x-graphql-csrf'],
    exposedHeaders: ['x-correlation-id', 'retry-after'],
    maxAge: 600,
  },

  // Queries/mutations over HTTP; subscriptions over graphql-transport-ws on the same URL
  // through ws-transport.ts (identity in connectionParams, no retry loop on 4403).
  // (The default subscription transport, SSE, never delivers Strawberry's events.)
  transports: { http: HTTPTransport, ws: opscWsTransport },
  transportEntries: {
    ...locationOverrides,
    '*.http': { options: { subscriptions: { kind: 'ws' } } },
  },

  // Queries and mutations: the verified token, the correlation id and the client IP as HTTP headers.
  propagateHeaders: {
    fromClientToSubgraphs({ context }) {
      const ctx = context as unknown as OpscContext;
      return {
        authorization: ctx.opscAuthorization,
        [CORRELATION_HEADER]: ctx.opscCorrelationId,
        // L2: the real client address, overwriting anything the client sent.
        ...forwardedIpHeaders(ctx.opscClientIp, clientIpSecret),
      };
    },
  },

  // Logs carry the correlation id; responses echo it in x-correlation-id.
  requestId: {
    headerName: CORRELATION_HEADER,
    generateRequestId({ context }) {
      const id = randomUUID();
      (context as unknown as OpscContext).opscCorrelationId = id;
      return id;
    },
  },

  jwt: {
    signingKeyProviders: [signingKey],
    tokenLookupLocations: [
      extractFromHeader({ name: 'authorization', prefix: 'Bearer' }),
      extractFromWsConnectionParams,
    ],
    tokenVerification: {
      algorithms: ['RS256'],
      issuer: jwtIssuer,
      audience: jwtAudience,
    },
    // No token: pass (login, refreshSession; subgraphs decide per field).
    // Invalid token (bad signature, expired, wrong iss/aud, malformed): rejected here.
    reject: { missingToken: false, invalidToken: true },
    // Subgraphs get the raw token (headers / connectionParams), not claims in extensions.
    forward: { payload: false, token: false },
  },

  maxDepth,
  maxTokens,

  prometheus: {
    endpoint: '/metrics',
    metrics: {
      graphql_yoga_http_duration: true,
      graphql_envelop_request_duration: true,
      graphql_envelop_request: true,
      graphql_envelop_phase_validate: true,
      graphql_envelop_phase_execute: true,
      graphql_envelop_phase_subscribe: true,
      graphql_envelop_error_result: true,
      graphql_gateway_fetch_duration: true,
      graphql_gateway_subgraph_execute_duration: true,
      graphql_gateway_subgraph_execute_errors: true,
    },
  },

  plugins: () => [
    useSecurityHeaders(),
    useBodyLimit(),
    useOpscRateLimits(rateLimits, (msg) => console.warn(msg)),
    maxAliasesPlugin({ n: maxAliases, exposeLimits: true }),
    useOpscIdentity(),
    useCostLimit(costLimit),
    useSubscriptionLimit(subscriptionLimit),
  ],
});
