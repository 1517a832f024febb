// THE run page: status per target (a virtualized grid that stays usable at thousands of targets),
// the live log (virtualized, ANSI colours), filters, regex search in a worker, follow, copy, download,
// cancel and retry. Events come from executionEventBatches, resumed by afterSeq after a drop.
import {
  Alert, Box, Button, Checkbox, Chip, FormControlLabel, LinearProgress, MenuItem, Paper, Switch, TextField, Tooltip,
  Typography,
} from '@mui/material';
import {
  CancelExecutionDocument, ExecutionDocument, RetryExecutionDocument, unwrap, type FollowState,
} from '@opsconductor/frontend-adapter';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useNavigate, useParams } from 'react-router-dom';
import { VirtuosoGrid, type VirtuosoHandle } from 'react-virtuoso';
import { fmtDuration, fmtTime, useApi, useMutation, useQuery } from '../api';
import { Loading, PageHeader, STATUS_BG, StatusChip } from '../components/common';
import { LogViewer } from '../run/LogViewer';
import { LogStore, plainText, type LogFilter } from '../run/logstore';

const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function copyText(text: string) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
}

interface TargetInfo { id: string; name: string; status: string; exitCode?: number | null; message?: string | null }

export function RunPage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const { client, can, notify } = useApi();
  const { run, busy } = useMutation();
  const q = useQuery(ExecutionDocument, { id });
  const ex = q.data?.execution;

  // ---- events -> store ------------------------------------------------------------------
  const store = useMemo(() => new LogStore(), [id]);
  const [version, setVersion] = useState(0);
  const [streamState, setStreamState] = useState<FollowState>('connecting');
  const [live, setLive] = useState<Map<string, { status: string; exitCode?: number | null }>>(new Map());
  const worker = useMemo(() => new Worker(new URL('../run/search.worker.ts', import.meta.url), { type: 'module' }), [id]);
  useEffect(() => () => worker.terminate(), [worker]);
  const frame = useRef(0);
  const pendingStatus = useRef(new Map<string, { status: string; exitCode?: number | null }>());
  const reloadRef = useRef(q.reload);
  reloadRef.current = q.reload;

  useEffect(() => {
    const follower = client.followExecution(id, {
      onEvents(events) {
        const from = store.append(events);
        if (store.length > from) worker.postMessage({ type: 'append', lines: store.text.slice(from) });
        for (const e of events) {
          if ((e.type === 'TARGET_FINISHED' || e.type === 'TARGET_STARTED') && e.targetId)
            pendingStatus.current.set(e.targetId, { status: e.type === 'TARGET_STARTED' ? 'RUNNING' : (e.status ?? 'FINISHED'), exitCode: e.exitCode });
          if (e.type === 'EXECUTION_FINISHED') setTimeout(() => reloadRef.current(), 300);
        }
        if (!frame.current)
          frame.current = requestAnimationFrame(() => {
            frame.current = 0;
            if (pendingStatus.current.size) {
              const updates = pendingStatus.current;
              pendingStatus.current = new Map();
              setLive((m) => { const n = new Map(m); for (const [k, v] of updates) n.set(k, v); return n; });
            }
            setVersion((v) => v + 1);
          });
      },
      onState: (s) => setStreamState(s),
    });
    return () => {
      follower.stop();
      if (frame.current) cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [client, id, store, worker]);

  // ---- targets --------------------------------------------------------------------------
  const targets: TargetInfo[] = useMemo(() => (ex?.targetRuns ?? []).map((r) => {
    const l = live.get(r.targetId);
    const status = TERMINAL.includes(r.status) || !l ? r.status : l.status;
    return { id: r.targetId, name: r.targetName || r.host, status, exitCode: l?.exitCode ?? r.exitCode, message: r.message };
  }), [ex, live]);
  const names = useMemo(() => new Map(targets.map((t) => [t.id, t.name])), [targets]);
  const nameOf = useCallback((ti: number) => names.get(store.targetIds[ti]) ?? store.targetIds[ti]?.slice(0, 8) ?? '', [names, store]);
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const t of targets) c[t.status] = (c[t.status] ?? 0) + 1;
    return c;
  }, [targets]);
  const [gridStatus, setGridStatus] = useState('');
  const gridTargets = gridStatus ? targets.filter((t) => t.status === gridStatus) : targets;

  // ---- filters and the view -------------------------------------------------------------
  const [targetFilter, setTargetFilter] = useState<string>('');
  const [streams, setStreams] = useState<[boolean, boolean, boolean]>([true, true, true]);
  const filter: LogFilter = useMemo(() => ({
    target: targetFilter ? store.indexOf(targetFilter) : null, streams,
  }), [targetFilter, streams, store]);
  const identity = filter.target === null && streams.every(Boolean);
  const viewRef = useRef<{ key: string; lines: number[]; upto: number }>({ key: '', lines: [], upto: 0 });
  const view = useMemo(() => {
    if (identity) return null;
    const key = JSON.stringify(filter);
    const v = viewRef.current;
    if (v.key !== key) viewRef.current = { key, lines: store.select(filter), upto: store.length };
    else if (v.upto < store.length) {
      for (const i of store.select(filter, v.upto)) v.lines.push(i);
      v.upto = store.length;
    }
    return viewRef.current.lines;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [identity, filter, store, version]);
  const total = view ? view.length : store.length;

  // ---- search ---------------------------------------------------------------------------
  const [pattern, setPattern] = useState('');
  const [regex, setRegex] = useState(true);
  const [search, setSearch] = useState<{ matches: Int32Array; error?: string; searched: number } | null>(null);
  const [hitPos, setHitPos] = useState(0);
  const searchId = useRef(0);
  useEffect(() => {
    worker.onmessage = (ev: MessageEvent<{ id: number; matches: Int32Array; error?: string; searched: number }>) => {
      if (ev.data.id === searchId.current) { setSearch(ev.data); setHitPos(0); }
    };
  }, [worker]);
  useEffect(() => {
    if (!pattern) { setSearch(null); return; }
    const t = setTimeout(() => {
      searchId.current += 1;
      worker.postMessage({ type: 'search', id: searchId.current, pattern, regex, caseSensitive: false });
    }, 250);
    return () => clearTimeout(t);
  }, [pattern, regex, worker]);
  const hits = useMemo(() => (search ? new Set(search.matches) : null), [search]);
  const virtuoso = useRef<VirtuosoHandle | null>(null);
  const [follow, setFollow] = useState(true);
  const jump = (delta: number) => {
    if (!search?.matches.length) return;
    const n = (hitPos + delta + search.matches.length) % search.matches.length;
    setHitPos(n);
    setFollow(false);
    const line = search.matches[n];
    const idx = view ? view.indexOf(line) : line;
    if (idx >= 0) virtuoso.current?.scrollToIndex({ index: idx, align: 'center' });
  };

  // ---- actions --------------------------------------------------------------------------
  const allLines = () => Array.from({ length: store.length }, (_, i) => i);
  const visible = () => (view ?? allLines());
  const copy = async () => {
    await copyText(plainText(store, visible(), targetFilter ? undefined : nameOf));
    notify(`Copied ${total} lines (no timestamps)`, 'success');
  };
  const cancel = async () => {
    const d = await run(CancelExecutionDocument, { id }, (d) => unwrap(d.cancelExecution, 'ExecutionCancelling'));
    if (d) notify('Cancelling…', 'info');
    q.reload();
  };
  const retry = async () => {
    const d = await run(RetryExecutionDocument, { id, confirmDangerous: null }, (d) => unwrap(d.retryExecution, ['ExecutionStarted', 'ExecutionQueued']));
    const r = d?.retryExecution;
    if (r && (r.__typename === 'ExecutionStarted' || r.__typename === 'ExecutionQueued')) navigate(`/executions/${r.execution.id}`);
  };
  const finished = ex ? TERMINAL.includes(ex.status) : false;
  const runningNow = ex && !finished;

  return (
    <>
      <PageHeader title={ex ? `${ex.jobName} — run #${ex.number}` : 'Run'} actions={ex && (
        <>
          <StatusChip status={ex.cancelRequested && !finished ? 'CANCELLING' : ex.status} />
          {runningNow && can('executions:cancel') && <Button color="error" variant="contained" onClick={() => void cancel()} disabled={busy || ex.cancelRequested}>Cancel run</Button>}
          {finished && ex.failedTargets + ex.cancelledTargets > 0 && can('jobs:execute') &&
            <Button variant="contained" onClick={() => void retry()} disabled={busy}>Retry failed targets</Button>}
        </>
      )} />
      <Loading loading={q.loading && !ex} error={q.error} />
      {ex && (
        <Typography variant="body2" sx={{ mb: 1 }} data-testid="run-summary">
          {ex.totalTargets} targets · {ex.succeededTargets} succeeded · {ex.failedTargets} failed · {ex.cancelledTargets} cancelled ·
          started {fmtTime(ex.startedAt)} · {fmtDuration(ex.startedAt, ex.finishedAt)}
          {ex.retryOf && <> · retry of <a href={`/executions/${ex.retryOf}`}>an earlier run</a></>}
          {' · '}stream: <span data-testid="stream-state">{streamState}</span>
        </Typography>
      )}
      {ex?.message && <Alert severity="info" sx={{ mb: 1 }}>{ex.message}</Alert>}
      {streamState === 'reconnecting' && <Alert severity="warning" sx={{ mb: 1 }}>Connection lost; resuming after event {store.lastSeq}…</Alert>}
      {runningNow && <LinearProgress variant={ex.totalTargets ? 'determinate' : 'indeterminate'} aria-label="Progress"
        value={ex.totalTargets ? (100 * targets.filter((t) => TERMINAL.includes(t.status)).length) / ex.totalTargets : 0} sx={{ mb: 1 }} />}

      <Paper variant="outlined" sx={{ p: 1, mb: 1 }}>
        <Box sx={{ display: 'flex', gap: 0.5, flexWrap: 'wrap', mb: 0.5, alignItems: 'center' }}>
          <Typography variant="subtitle2" component="h2" sx={{ mr: 1 }}>Targets</Typography>
          <Chip size="small" label={`all ${targets.length}`} onClick={() => setGridStatus('')} variant={gridStatus ? 'outlined' : 'filled'} />
          {Object.entries(counts).map(([s, n]) => (
            <Chip key={s} size="small" label={`${s.toLowerCase()} ${n}`} onClick={() => setGridStatus(s)}
              sx={{ bgcolor: gridStatus === s ? STATUS_BG[s] : undefined, color: gridStatus === s ? '#fff' : undefined }} variant={gridStatus === s ? 'filled' : 'outlined'} />
          ))}
          {targetFilter && <Chip size="small" label={`log: ${names.get(targetFilter)}`} onDelete={() => setTargetFilter('')} color="primary" />}
        </Box>
        <Box sx={{ height: Math.min(120, Math.ceil(gridTargets.length / 8) * 30 + 6), minHeight: 36 }} data-testid="status-grid">
          <VirtuosoGrid
            style={{ height: '100%' }}
            totalCount={gridTargets.length}
            listClassName="status-grid-list"
            itemClassName="status-grid-item"
            computeItemKey={(i) => gridTargets[i].id}
            itemContent={(i) => {
              const t = gridTargets[i];
              return (
                <Tooltip title={`${t.name}: ${t.status}${t.exitCode != null ? ` (exit ${t.exitCode})` : ''}${t.message ? ` — ${t.message}` : ''}`}>
                  <button type="button" className="status-cell" data-status={t.status} aria-label={`${t.name}: ${t.status}`}
                    aria-pressed={targetFilter === t.id}
                    onClick={() => setTargetFilter((f) => (f === t.id ? '' : t.id))}
                    style={{ background: STATUS_BG[t.status] ?? '#555', outline: targetFilter === t.id ? '2px solid #ffb300' : undefined }}>
                    {t.name}
                  </button>
                </Tooltip>
              );
            }}
          />
        </Box>
      </Paper>

      <Box sx={{ display: 'flex', gap: 1, flexWrap: 'wrap', alignItems: 'center', mb: 1 }}>
        <TextField select size="small" label="Target" value={targetFilter} onChange={(e) => setTargetFilter(e.target.value)} sx={{ minWidth: 160 }}>
          <MenuItem value="">all targets</MenuItem>
          {targets.slice(0, 2000).map((t) => <MenuItem key={t.id} value={t.id}>{t.name}</MenuItem>)}
        </TextField>
        {(['stdout', 'stderr', 'events'] as const).map((s, i) => (
          <FormControlLabel key={s} label={s} control={<Checkbox size="small" checked={streams[i]}
            onChange={(e) => setStreams((st) => st.map((v, j) => (j === i ? e.target.checked : v)) as [boolean, boolean, boolean])} />} />
        ))}
        <TextField size="small" label={regex ? 'Search (regex)' : 'Search'} value={pattern} onChange={(e) => setPattern(e.target.value)}
          error={!!search?.error} helperText={search?.error} slotProps={{ htmlInput: { 'data-testid': 'log-search' } }} />
        <FormControlLabel label="regex" control={<Checkbox size="small" checked={regex} onChange={(e) => setRegex(e.target.checked)} />} />
        {search && !search.error && (
          <>
            <Typography variant="body2" data-testid="search-count">{search.matches.length ? `${hitPos + 1} / ${search.matches.length}` : 'no match'}</Typography>
            <Button onClick={() => jump(-1)} disabled={!search.matches.length}>Prev</Button>
            <Button onClick={() => jump(1)} disabled={!search.matches.length}>Next</Button>
          </>
        )}
        <FormControlLabel label="follow" control={<Switch size="small" checked={follow} onChange={(e) => {
          setFollow(e.target.checked);
          if (e.target.checked) virtuoso.current?.scrollToIndex({ index: total - 1, align: 'end' });
        }} />} />
        <Button onClick={() => void copy()}>Copy</Button>
        <Button onClick={() => download(`run-${ex?.number ?? id}.log`, plainText(store, allLines(), nameOf))}>Download all</Button>
        {targetFilter && <Button onClick={() => download(`run-${ex?.number ?? id}-${names.get(targetFilter)}.log`,
          plainText(store, store.select({ target: store.indexOf(targetFilter), streams: [true, true, true] })))}>Download target</Button>}
        <Typography variant="body2" color="text.secondary" data-testid="line-count">{total.toLocaleString()} lines</Typography>
      </Box>
      <LogViewer store={store} view={view} total={total} version={version} follow={follow}
        onFollowChange={(atBottom) => setFollow(atBottom)} nameOf={nameOf} showName={!targetFilter} hits={hits} innerRef={virtuoso} />
    </>
  );
}
