// The app's connection to the router: one OpsClient (frontend-adapter), the signed-in user and
// small hooks for queries and mutations with errors shown in one place.
import {
  createOpsClient,
  errorMessage,
  hasPermission,
  type OpsClient,
  type SessionTokens,
} from '@opsconductor/frontend-adapter';
import type { TypedDocumentNode } from '@urql/core';
import { Alert, Snackbar } from '@mui/material';
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';

declare global {
  interface Window {
    OPSC_CONFIG?: { graphqlUrl?: string; rayDashboardUrl?: string };
  }
}

export const config = {
  graphqlUrl: window.OPSC_CONFIG?.graphqlUrl || 'http://127.0.0.1:4000/graphql',
  rayDashboardUrl: window.OPSC_CONFIG?.rayDashboardUrl || 'http://127.0.0.1:8265',
};

interface Ctx {
  client: OpsClient;
  session: SessionTokens | null;
  can: (perm: string) => boolean;
  notify: (message: string, severity?: 'success' | 'error' | 'info' | 'warning') => void;
}

const ApiContext = createContext<Ctx | null>(null);

export function ApiProvider({ children }: { children: ReactNode }) {
  const client = useMemo(() => createOpsClient({ url: config.graphqlUrl }), []);
  const [session, setSession] = useState<SessionTokens | null>(client.session.current);
  const [toast, setToast] = useState<{ message: string; severity: 'success' | 'error' | 'info' | 'warning' } | null>(null);
  useEffect(() => client.session.subscribe(setSession), [client]);
  const can = useCallback((perm: string) => hasPermission(session?.user, perm), [session]);
  const notify = useCallback(
    (message: string, severity: 'success' | 'error' | 'info' | 'warning' = 'info') => setToast({ message, severity }),
    [],
  );
  const value = useMemo(() => ({ client, session, can, notify }), [client, session, can, notify]);
  return (
    <ApiContext.Provider value={value}>
      {children}
      <Snackbar open={!!toast} autoHideDuration={6000} onClose={() => setToast(null)}
        anchorOrigin={{ vertical: 'bottom', horizontal: 'center' }}>
        {toast ? <Alert severity={toast.severity} onClose={() => setToast(null)} variant="filled" role="status">{toast.message}</Alert> : undefined}
      </Snackbar>
    </ApiContext.Provider>
  );
}

export function useApi(): Ctx {
  const ctx = useContext(ApiContext);
  if (!ctx) throw new Error('ApiProvider missing');
  return ctx;
}

export interface QueryState<D> {
  data: D | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
}

/** Run a query when its variables change; `reload()` runs it again. */
export function useQuery<D, V extends Record<string, unknown>>(
  doc: TypedDocumentNode<D, V>,
  variables: V,
  opts: { skip?: boolean; pollMs?: number } = {},
): QueryState<D> {
  const { client } = useApi();
  const [state, setState] = useState<{ data?: D; error?: string; loading: boolean }>({ loading: !opts.skip });
  const [tick, setTick] = useState(0);
  const key = JSON.stringify(variables);
  const alive = useRef(true);
  useEffect(() => {
    alive.current = true;
    if (opts.skip) return;
    setState((s) => ({ ...s, loading: true }));
    client
      .query(doc, JSON.parse(key) as V)
      .then((data) => alive.current && setState({ data, loading: false }))
      .catch((err: unknown) => alive.current && setState((s) => ({ ...s, error: errorMessage(err), loading: false })));
    return () => {
      alive.current = false;
    };
  }, [client, doc, key, tick, opts.skip]);
  useEffect(() => {
    if (!opts.pollMs) return;
    const t = setInterval(() => setTick((n) => n + 1), opts.pollMs);
    return () => clearInterval(t);
  }, [opts.pollMs]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** A mutation runner: returns the data, or shows the error and returns undefined. */
export function useMutation() {
  const { client, notify } = useApi();
  const [busy, setBusy] = useState(false);
  const run = useCallback(
    async <D, V extends Record<string, unknown>>(doc: TypedDocumentNode<D, V>, variables: V, check?: (d: D) => void) => {
      setBusy(true);
      try {
        const data = await client.mutate(doc, variables);
        check?.(data);
        return data;
      } catch (err) {
        notify(errorMessage(err), 'error');
        return undefined;
      } finally {
        setBusy(false);
      }
    },
    [client, notify],
  );
  return { run, busy };
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function fmtDuration(from?: string | null, to?: string | null): string {
  if (!from) return '—';
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}
