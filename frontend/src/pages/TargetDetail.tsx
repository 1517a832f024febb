import {
  Box, Button, Card, CardContent, Grid, Table, TableBody, TableCell, TableHead, TableRow, Typography,
} from '@mui/material';
import { AcceptHostKeyDocument, DeleteTargetDocument, TargetDocument, TestConnectionDocument, unwrap } from '@opsconductor/frontend-adapter';
import { useState } from 'react';
import { useNavigate, useParams } from 'react-router-dom';
import { fmtTime, useApi, useMutation, useQuery } from '../api';
import { HealthChip, Loading, PageHeader } from '../components/common';
import { TargetDialog } from './TargetDialog';

export function TargetDetail() {
  const { id = '' } = useParams();
  const { can, notify } = useApi();
  const navigate = useNavigate();
  const q = useQuery(TargetDocument, { id });
  const { run, busy } = useMutation();
  const [editing, setEditing] = useState(false);
  const t = q.data?.target;
  const write = can('targets:write');
  const test = async () => {
    const d = await run(TestConnectionDocument, { targetId: id });
    if (d) notify(`${d.testConnection.ok ? 'Connected' : 'Failed'}: ${d.testConnection.message}`, d.testConnection.ok ? 'success' : 'error');
    q.reload();
  };
  const accept = async (methodId: string) => {
    const d = await run(AcceptHostKeyDocument, { targetId: id, methodId }, (d) => unwrap(d.acceptHostKey, 'HostKeyAccepted'));
    if (d?.acceptHostKey.__typename === 'HostKeyAccepted') notify(`Host key ${d.acceptHostKey.hostKey.fingerprint} trusted`, 'success');
    q.reload();
  };
  const remove = async () => {
    if (!window.confirm(`Delete target ${t?.name}?`)) return;
    const d = await run(DeleteTargetDocument, { id }, (d) => unwrap(d.deleteTarget, 'TargetDeleted'));
    if (d) navigate('/targets');
  };
  return (
    <>
      <PageHeader title={t ? `${t.name} (${t.serial})` : 'Target'} actions={write && t && (
        <>
          <Button variant="contained" onClick={() => void test()} disabled={busy}>Test connection</Button>
          <Button variant="outlined" onClick={() => setEditing(true)}>Edit</Button>
          <Button color="error" onClick={() => void remove()}>Delete</Button>
        </>
      )} />
      <Loading loading={q.loading} error={q.error} />
      {t && (
        <Grid container spacing={2}>
          <Grid size={{ xs: 12, md: 5 }}>
            <Card variant="outlined"><CardContent>
              <Typography variant="h6" component="h2">Details</Typography>
              <Typography>Health: <HealthChip health={t.healthStatus} /></Typography>
              <Typography>OS: {t.osType} · Environment: {t.environment} · Status: {t.status}</Typography>
              <Typography>Tags: {t.tags.join(', ') || '—'}</Typography>
              {t.description && <Typography>{t.description}</Typography>}
            </CardContent></Card>
          </Grid>
          <Grid size={{ xs: 12, md: 7 }}>
            <Card variant="outlined"><CardContent>
              <Typography variant="h6" component="h2">Communication methods</Typography>
              <Table size="small">
                <TableHead><TableRow><TableCell>Type</TableCell><TableCell>Address</TableCell><TableCell>Credential</TableCell><TableCell>Host key</TableCell></TableRow></TableHead>
                <TableBody>
                  {t.communicationMethods.map((m) => (
                    <TableRow key={m.id}>
                      <TableCell>{m.type}{m.isPrimary ? ' (primary)' : ''}</TableCell>
                      <TableCell>{m.host}:{m.port}</TableCell>
                      <TableCell>{m.credential ? `${m.credential.type} ${m.credential.username}` : '—'}</TableCell>
                      <TableCell>
                        <Box sx={{ fontFamily: 'monospace', fontSize: 12, wordBreak: 'break-all' }}>{m.hostKey?.fingerprint ?? 'none yet'}</Box>
                        {write && m.type === 'SSH' && <Button onClick={() => void accept(m.id)} disabled={busy}>Accept current host key</Button>}
                      </TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </CardContent></Card>
          </Grid>
          <Grid size={12}>
            <Card variant="outlined"><CardContent>
              <Typography variant="h6" component="h2">Health history</Typography>
              <Table size="small">
                <TableHead><TableRow><TableCell>When</TableCell><TableCell>Result</TableCell><TableCell>Health</TableCell><TableCell>Trigger</TableCell><TableCell>Message</TableCell></TableRow></TableHead>
                <TableBody>
                  {(q.data?.healthHistory.edges ?? []).map(({ node: h }) => (
                    <TableRow key={h.id}>
                      <TableCell>{fmtTime(h.checkedAt)}</TableCell>
                      <TableCell>{h.ok ? 'ok' : 'failed'}{h.latencyMs != null ? ` (${Math.round(h.latencyMs)} ms)` : ''}</TableCell>
                      <TableCell><HealthChip health={h.healthStatus} /></TableCell>
                      <TableCell>{h.trigger}</TableCell>
                      <TableCell>{h.message}</TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </CardContent></Card>
          </Grid>
        </Grid>
      )}
      {editing && t && <TargetDialog open target={t} onClose={() => setEditing(false)} onSaved={() => { setEditing(false); q.reload(); }} />}
    </>
  );
}
