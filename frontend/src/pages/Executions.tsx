import { Box, Button, Link, MenuItem, Paper, Table, TableBody, TableCell, TableContainer, TableHead, TableRow, TextField } from '@mui/material';
import { ExecutionsDocument, type ExecutionStatus } from '@opsconductor/frontend-adapter';
import { useState } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import { fmtDuration, fmtTime, useQuery } from '../api';
import { Loading, PageHeader, StatusChip } from '../components/common';

export function Executions() {
  const [status, setStatus] = useState('');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const q = useQuery(ExecutionsDocument, { first: 50, after: cursors[cursors.length - 1], filter: { status: (status || null) as ExecutionStatus | null } }, { pollMs: 10_000 });
  const rows = q.data?.executions.edges.map((e) => e.node) ?? [];
  return (
    <>
      <PageHeader title="Executions" />
      <TextField select size="small" label="Status" value={status} onChange={(e) => { setStatus(e.target.value); setCursors([null]); }} sx={{ mb: 1, minWidth: 160 }}>
        <MenuItem value="">any</MenuItem>
        {['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'].map((s) => <MenuItem key={s} value={s}>{s}</MenuItem>)}
      </TextField>
      <Loading loading={q.loading && !q.data} error={q.error} />
      <TableContainer component={Paper} variant="outlined">
        <Table size="small" aria-label="Executions">
          <TableHead><TableRow>
            <TableCell>Run</TableCell><TableCell>Status</TableCell><TableCell>Targets ok / failed / total</TableCell>
            <TableCell>Created</TableCell><TableCell>Duration</TableCell>
          </TableRow></TableHead>
          <TableBody>
            {rows.map((r) => (
              <TableRow key={r.id} hover>
                <TableCell><Link component={RouterLink} to={`/executions/${r.id}`}>{r.jobName} #{r.number}</Link></TableCell>
                <TableCell><StatusChip status={r.status} /></TableCell>
                <TableCell>{r.succeededTargets} / {r.failedTargets} / {r.totalTargets}</TableCell>
                <TableCell>{fmtTime(r.createdAt)}</TableCell>
                <TableCell>{fmtDuration(r.startedAt, r.finishedAt)}</TableCell>
              </TableRow>
            ))}
            {!rows.length && !q.loading && <TableRow><TableCell colSpan={5}>No runs.</TableCell></TableRow>}
          </TableBody>
        </Table>
      </TableContainer>
      <Box sx={{ mt: 1 }}>
        <Button disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>Previous</Button>
        <Button disabled={!q.data?.executions.pageInfo.hasNextPage} onClick={() => setCursors((c) => [...c, q.data?.executions.pageInfo.endCursor ?? null])}>Next</Button>
      </Box>
    </>
  );
}
