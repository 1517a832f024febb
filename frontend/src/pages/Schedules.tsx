import {
  Alert, Box, Button, Card, CardContent, Dialog, DialogActions, DialogContent, DialogTitle, Grid, Link, List, ListItem,
  ListItemText, MenuItem, Paper, Switch, Table, TableBody, TableCell, TableContainer, TableHead, TableRow, TextField, Typography,
} from '@mui/material';
import {
  CreateScheduleDocument, DeleteScheduleDocument, JobsDocument, PauseScheduleDocument, PreviewScheduleDocument, ResumeScheduleDocument,
  RunScheduleNowDocument, ScheduleDocument, SchedulesDocument, UpcomingFiresDocument, errorMessage, unwrap, type ScheduleInput,
  type ScheduleKind,
} from '@opsconductor/frontend-adapter';
import { useEffect, useMemo, useState } from 'react';
import { Link as RouterLink, useNavigate, useParams } from 'react-router-dom';
import { fmtTime, useApi, useMutation, useQuery } from '../api';
import { Loading, PageHeader, StatusChip } from '../components/common';

function ScheduleEditor({ onClose, onSaved }: { onClose: () => void; onSaved: (id: string) => void }) {
  const { client } = useApi();
  const { run, busy } = useMutation();
  const jobs = useQuery(JobsDocument, { first: 200 });
  const [f, setF] = useState({ jobId: '', name: '', kind: 'CRON' as ScheduleKind, timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
    cron: '0 2 * * *', intervalSeconds: '3600', runAt: '' });
  const [preview, setPreview] = useState<{ description: string; nextFireTimes: string[]; notes: string[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const input = (): ScheduleInput => ({
    jobId: f.jobId, name: f.name || null, kind: f.kind, timezone: f.timezone,
    cron: f.kind === 'CRON' ? f.cron : null,
    intervalSeconds: f.kind === 'INTERVAL' ? Number(f.intervalSeconds) : null,
    runAt: f.kind === 'ONCE' && f.runAt ? new Date(f.runAt).toISOString() : null,
  });
  useEffect(() => {
    if (!f.jobId) return;
    const t = setTimeout(() => {
      client.query(PreviewScheduleDocument, { input: input(), count: 8 })
        .then((d) => { setPreview(d.previewSchedule); setError(null); })
        .catch((e) => { setPreview(null); setError(errorMessage(e)); });
    }, 300);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [f, client]);
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF((s) => ({ ...s, [k]: e.target.value }));
  const save = async () => {
    const d = await run(CreateScheduleDocument, { input: input() }, (d) => unwrap(d.createSchedule, 'ScheduleCreated'));
    if (d?.createSchedule.__typename === 'ScheduleCreated') onSaved(d.createSchedule.schedule.id);
  };
  return (
    <Dialog open onClose={onClose} maxWidth="md" fullWidth aria-labelledby="sched-title">
      <DialogTitle id="sched-title">New schedule</DialogTitle>
      <DialogContent>
        <Grid container spacing={2} sx={{ mt: 0.5 }}>
          <Grid size={{ xs: 12, sm: 6 }}>
            <TextField select label="Job" value={f.jobId} onChange={set('jobId')} fullWidth required>
              {(jobs.data?.jobs.edges ?? []).map(({ node: j }) => <MenuItem key={j.id} value={j.id}>{j.name}</MenuItem>)}
            </TextField>
          </Grid>
          <Grid size={{ xs: 12, sm: 6 }}><TextField label="Name" value={f.name} onChange={set('name')} fullWidth /></Grid>
          <Grid size={{ xs: 6, sm: 3 }}>
            <TextField select label="Kind" value={f.kind} onChange={set('kind')} fullWidth>
              {['CRON', 'INTERVAL', 'ONCE'].map((k) => <MenuItem key={k} value={k}>{k}</MenuItem>)}
            </TextField>
          </Grid>
          <Grid size={{ xs: 6, sm: 4 }}><TextField label="Time zone (IANA)" value={f.timezone} onChange={set('timezone')} fullWidth /></Grid>
          <Grid size={{ xs: 12, sm: 5 }}>
            {f.kind === 'CRON' && <TextField label="Cron (5 fields)" value={f.cron} onChange={set('cron')} fullWidth />}
            {f.kind === 'INTERVAL' && <TextField label="Every (seconds)" value={f.intervalSeconds} onChange={set('intervalSeconds')} fullWidth />}
            {f.kind === 'ONCE' && <TextField label="Run at" type="datetime-local" value={f.runAt} onChange={set('runAt')} fullWidth slotProps={{ inputLabel: { shrink: true } }} />}
          </Grid>
        </Grid>
        {error && <Alert severity="error" sx={{ mt: 1 }}>{error}</Alert>}
        {preview && (
          <Box sx={{ mt: 2 }} data-testid="schedule-preview">
            <Typography variant="subtitle1">{preview.description}</Typography>
            <List dense>{preview.nextFireTimes.map((t) => <ListItem key={t}><ListItemText primary={fmtTime(t)} secondary={t} /></ListItem>)}</List>
            {preview.notes.map((n, i) => <Alert key={i} severity="info" sx={{ mb: 0.5 }}>DST: {n}</Alert>)}
          </Box>
        )}
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="contained" onClick={() => void save()} disabled={busy || !f.jobId || !!error}>Create</Button>
      </DialogActions>
    </Dialog>
  );
}

export function Schedules() {
  const { can } = useApi();
  const navigate = useNavigate();
  const [creating, setCreating] = useState(false);
  const q = useQuery(SchedulesDocument, { first: 100 });
  const range = useMemo(() => ({ from: new Date().toISOString(), to: new Date(Date.now() + 14 * 86400_000).toISOString() }), []);
  const fires = useQuery(UpcomingFiresDocument, range);
  const byDay = useMemo(() => {
    const m = new Map<string, { name: string; at: string; id: string }[]>();
    for (const f of fires.data?.upcomingFires ?? []) {
      const day = new Date(f.fireAt).toDateString();
      m.set(day, [...(m.get(day) ?? []), { name: f.schedule.name || f.schedule.job.name, at: f.fireAt, id: f.schedule.id }]);
    }
    return [...m.entries()];
  }, [fires.data]);
  const rows = q.data?.schedules.edges.map((e) => e.node) ?? [];
  return (
    <>
      <PageHeader title="Schedules" actions={can('jobs:write') && can('jobs:execute') && <Button variant="contained" onClick={() => setCreating(true)}>New schedule</Button>} />
      <Loading loading={q.loading} error={q.error} />
      <TableContainer component={Paper} variant="outlined" sx={{ mb: 2 }}>
        <Table size="small" aria-label="Schedules">
          <TableHead><TableRow><TableCell>Name</TableCell><TableCell>Job</TableCell><TableCell>When</TableCell><TableCell>Enabled</TableCell><TableCell>Next fire</TableCell><TableCell>Fires</TableCell></TableRow></TableHead>
          <TableBody>
            {rows.map((s) => (
              <TableRow key={s.id} hover>
                <TableCell><Link component={RouterLink} to={`/schedules/${s.id}`}>{s.name || s.id.slice(0, 8)}</Link></TableCell>
                <TableCell>{s.job.name}</TableCell>
                <TableCell>{s.description} ({s.timezone})</TableCell>
                <TableCell>{s.enabled ? 'yes' : 'paused'}</TableCell>
                <TableCell>{fmtTime(s.nextFireAt)}</TableCell>
                <TableCell>{s.fireCount}</TableCell>
              </TableRow>
            ))}
            {!rows.length && !q.loading && <TableRow><TableCell colSpan={6}>No schedules.</TableCell></TableRow>}
          </TableBody>
        </Table>
      </TableContainer>
      <Typography variant="h6" component="h2">Upcoming fires (14 days)</Typography>
      <Grid container spacing={1}>
        {byDay.map(([day, list]) => (
          <Grid key={day} size={{ xs: 12, sm: 6, md: 3 }}>
            <Card variant="outlined"><CardContent>
              <Typography variant="subtitle2" component="h3">{day}</Typography>
              {list.slice(0, 12).map((x, i) => <Typography key={i} variant="body2">{new Date(x.at).toLocaleTimeString()} · <Link component={RouterLink} to={`/schedules/${x.id}`}>{x.name}</Link></Typography>)}
              {list.length > 12 && <Typography variant="body2">… {list.length - 12} more</Typography>}
            </CardContent></Card>
          </Grid>
        ))}
        {!byDay.length && <Grid size={12}><Typography variant="body2">Nothing scheduled.</Typography></Grid>}
      </Grid>
      {creating && <ScheduleEditor onClose={() => setCreating(false)} onSaved={(id) => navigate(`/schedules/${id}`)} />}
    </>
  );
}

export function ScheduleDetail() {
  const { id = '' } = useParams();
  const { can, notify } = useApi();
  const navigate = useNavigate();
  const q = useQuery(ScheduleDocument, { id });
  const { run, busy } = useMutation();
  const s = q.data?.schedule;
  const toggle = async (on: boolean) => {
    if (on) await run(ResumeScheduleDocument, { id }, (d) => unwrap(d.resumeSchedule, 'ScheduleUpdated'));
    else await run(PauseScheduleDocument, { id }, (d) => unwrap(d.pauseSchedule, 'ScheduleUpdated'));
    q.reload();
  };
  const runNow = async () => {
    const d = await run(RunScheduleNowDocument, { id }, (d) => unwrap(d.runScheduleNow, 'ScheduleFireStarted'));
    const r = d?.runScheduleNow;
    if (r?.__typename === 'ScheduleFireStarted') {
      notify('Fired', 'success');
      if (r.fire.execution) navigate(`/executions/${r.fire.execution.id}`);
      else q.reload();
    }
  };
  const remove = async () => {
    if (!window.confirm('Delete this schedule? Its history stays.')) return;
    const d = await run(DeleteScheduleDocument, { id }, (d) => unwrap(d.deleteSchedule, 'ScheduleDeleted'));
    if (d) navigate('/schedules');
  };
  return (
    <>
      <PageHeader title={s ? `Schedule ${s.name || s.id.slice(0, 8)}` : 'Schedule'} actions={s && can('jobs:write') && (
        <>
          <Box sx={{ display: 'flex', alignItems: 'center' }}><Switch checked={s.enabled} onChange={(e) => void toggle(e.target.checked)} slotProps={{ input: { 'aria-label': 'Enabled' } }} />{s.enabled ? 'enabled' : 'paused'}</Box>
          {can('jobs:execute') && <Button variant="contained" onClick={() => void runNow()} disabled={busy}>Run now</Button>}
          <Button color="error" onClick={() => void remove()}>Delete</Button>
        </>
      )} />
      <Loading loading={q.loading} error={q.error} />
      {s && (
        <>
          <Typography sx={{ mb: 1 }}>{s.description} · {s.timezone} · job <Link component={RouterLink} to={`/jobs/${s.job.id}`}>{s.job.name}</Link> · owner {s.owner?.username ?? '—'} ·
            next {fmtTime(s.nextFireAt)} · {s.fireCount} fires · misfire {s.misfirePolicy} · overlap {s.overlapPolicy} · DST gap {s.dstGapPolicy} / overlap {s.dstOverlapPolicy}</Typography>
          <Typography variant="h6" component="h2">Fire history</Typography>
          <TableContainer component={Paper} variant="outlined">
            <Table size="small" aria-label="Fire history">
              <TableHead><TableRow><TableCell>Scheduled for</TableCell><TableCell>Outcome</TableCell><TableCell>Late</TableCell><TableCell>Run</TableCell><TableCell>Reason</TableCell></TableRow></TableHead>
              <TableBody>
                {s.history.edges.map(({ node: h }) => (
                  <TableRow key={h.id}>
                    <TableCell>{fmtTime(h.scheduledFor)}</TableCell>
                    <TableCell><StatusChip status={h.outcome} /></TableCell>
                    <TableCell>{h.lateMs != null ? `${h.lateMs} ms` : '—'}</TableCell>
                    <TableCell>{h.execution ? <Link component={RouterLink} to={`/executions/${h.execution.id}`}>#{h.execution.number} {h.execution.status}</Link> : '—'}</TableCell>
                    <TableCell>{h.reason ?? ''}</TableCell>
                  </TableRow>
                ))}
                {!s.history.edges.length && <TableRow><TableCell colSpan={5}>No fires yet.</TableCell></TableRow>}
              </TableBody>
            </Table>
          </TableContainer>
        </>
      )}
    </>
  );
}
