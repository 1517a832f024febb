// The client's IP address as the router sees it, and how it is vouched for to subgraphs (L2).
//
// clientIp(): the socket's peer address (HTTP and WebSocket contexts both carry the Node
// request). Behind a reverse proxy you run (OPSC_ROUTER_TRUST_PROXY=1) it is the LAST
// X-Forwarded-For entry, the address that proxy saw: earlier entries are whatever the client
// wrote and prove nothing.
//
// forwardedIpHeaders(): what the router sends to every subgraph HTTP request. Client-sent
// X-Forwarded-For / x-opsc-client-ip never reach a subgraph (only the headers returned by
// propagateHeaders are sent), these replace them:
//   x-forwarded-for            the client IP (for logs and tools that read it)
//   x-opsc-client-ip           the client IP
//   x-opsc-client-ip-signature hex HMAC-SHA256(OPSC_CLIENT_IP_SECRET, client IP), when the secret is set
// Auth believes x-opsc-client-ip only from a trusted proxy address (OPSC_AUTH_TRUSTED_PROXIES)
// and, when OPSC_CLIENT_IP_SECRET is set, only with a valid signature: under `make dev` every
// caller is on loopback, so the address alone cannot tell the router from anyone else.
import { createHmac } from 'node:crypto';

export const CLIENT_IP_HEADER = 'x-opsc-client-ip';
export const CLIENT_IP_SIGNATURE_HEADER = 'x-opsc-client-ip-signature';

function normalize(address: string): string {
  const a = address.trim();
  // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
  return a.toLowerCase().startsWith('::ffff:') && a.includes('.') ? a.slice('::ffff:'.length) : a;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function clientIp(context: Record<string, any> | undefined, request: Request | undefined, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = request?.headers?.get('x-forwarded-for');
    if (forwarded) {
      const hops = forwarded
        .split(',')
        .map((h) => h.trim())
        .filter(Boolean);
      if (hops.length) return normalize(hops[hops.length - 1]);
    }
  }
  const address =
    context?.req?.socket?.remoteAddress ||
    context?.req?.connection?.remoteAddress ||
    context?.socket?._socket?.remoteAddress || // a `ws` WebSocket keeps the net.Socket there
    context?.socket?.remoteAddress;
  return typeof address === 'string' && address ? normalize(address) : 'unknown';
}

export function signClientIp(ip: string, secret: string): string {
  return createHmac('sha256', secret).update(ip, 'utf8').digest('hex');
}

export function forwardedIpHeaders(ip: string | undefined, secret: string | undefined): Record<string, string> {
  if (!ip || ip === 'unknown') return {};
  return {
    'x-forwarded-for': ip,
    [CLIENT_IP_HEADER]: ip,
    ...(secret ? { [CLIENT_IP_SIGNATURE_HEADER]: signClientIp(ip, secret) } : {}),
  };
}
