import { Card, CardContent, Grid, Link, List, ListItem, ListItemText, Typography } from '@mui/material';
import { ExecutionsDocument, TargetStatisticsDocument, UpcomingFiresDocument } from '@opsconductor/frontend-adapter';
import { useMemo } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import { fmtTime, useApi, useQuery } from '../api';
import { HealthChip, Loading, PageHeader, StatusChip } from '../components/common';

function Stat({ title, value, sub }: { title: string; value: string | number; sub?: string }) {
  return (
    <Card variant="outlined">
      <CardContent>
        <Typography variant="overline" component="h2">{title}</Typography>
        <Typography variant="h4" component="p">{value}</Typography>
        {sub && <Typography variant="body2" color="text.secondary">{sub}</Typography>}
      </CardContent>
    </Card>
  );
}

export function Dashboard() {
  const { can } = useApi();
  const dayStart = useMemo(() => {
    const d = new Date();
    d.setHours(0, 0, 0, 0);
    return d.toISOString();
  }, []);
  const range = useMemo(() => ({ from: new Date().toISOString(), to: new Date(Date.now() + 7 * 86400_000).toISOString() }), []);
  const stats = useQuery(TargetStatisticsDocument, {}, { skip: !can('targets:read') });
  const today = useQuery(ExecutionsDocument, { first: 200, filter: { createdAfter: dayStart } }, { skip: !can('executions:read'), pollMs: 10_000 });
  const fires = useQuery(UpcomingFiresDocument, range, { skip: !can('jobs:read') });
  const runs = today.data?.executions.edges.map((e) => e.node) ?? [];
  const finished = runs.filter((r) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(r.status));
  const ok = finished.filter((r) => r.status === 'SUCCEEDED').length;
  const running = runs.filter((r) => r.status === 'RUNNING' || r.status === 'QUEUED');
  return (
    <>
      <PageHeader title="Dashboard" />
      <Loading loading={stats.loading || today.loading} error={stats.error || today.error} />
      <Grid container spacing={2}>
        <Grid size={{ xs: 12, sm: 6, md: 3 }}><Stat title="Targets" value={stats.data?.targetStatistics.total ?? '—'} /></Grid>
        <Grid size={{ xs: 12, sm: 6, md: 3 }}><Stat title="Runs today" value={runs.length} sub={finished.length ? `${Math.round((ok / finished.length) * 100)}% succeeded` : 'none finished'} /></Grid>
        <Grid size={{ xs: 12, sm: 6, md: 3 }}><Stat title="Running now" value={running.length} /></Grid>
        <Grid size={{ xs: 12, sm: 6, md: 3 }}><Stat title="Upcoming fires (7 days)" value={fires.data?.upcomingFires.length ?? '—'} /></Grid>
        <Grid size={{ xs: 12, md: 4 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Targets by health</Typography>
            <List dense>
              {(stats.data?.targetStatistics.byHealth ?? []).map((h) => (
                <ListItem key={h.key} secondaryAction={<Typography>{h.count}</Typography>}>
                  <Link component={RouterLink} to={`/targets?health=${h.key}`}><HealthChip health={h.key} /></Link>
                </ListItem>
              ))}
            </List>
          </CardContent></Card>
        </Grid>
        <Grid size={{ xs: 12, md: 4 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Running now and recent</Typography>
            <List dense>
              {runs.slice(0, 8).map((r) => (
                <ListItem key={r.id} secondaryAction={<StatusChip status={r.status} />}>
                  <ListItemText primary={<Link component={RouterLink} to={`/executions/${r.id}`}>{r.jobName} #{r.number}</Link>}
                    secondary={fmtTime(r.createdAt)} />
                </ListItem>
              ))}
              {!runs.length && <ListItem><ListItemText primary="No runs today" /></ListItem>}
            </List>
          </CardContent></Card>
        </Grid>
        <Grid size={{ xs: 12, md: 4 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Upcoming fires</Typography>
            <List dense>
              {(fires.data?.upcomingFires ?? []).slice(0, 8).map((f, i) => (
                <ListItem key={i}>
                  <ListItemText primary={<Link component={RouterLink} to={`/schedules/${f.schedule.id}`}>{f.schedule.name || f.schedule.job.name}</Link>}
                    secondary={fmtTime(f.fireAt)} />
                </ListItem>
              ))}
              {!fires.data?.upcomingFires.length && <ListItem><ListItemText primary="Nothing scheduled" /></ListItem>}
            </List>
            <Typography variant="body2" color="text.secondary">Open alerts appear here once the audit service is deployed.</Typography>
          </CardContent></Card>
        </Grid>
      </Grid>
    </>
  );
}
