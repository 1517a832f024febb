import { Button, Link, Paper, Table, TableBody, TableCell, TableContainer, TableHead, TableRow, TextField } from '@mui/material';
import { JobsDocument } from '@opsconductor/frontend-adapter';
import { useState } from 'react';
import { Link as RouterLink, useNavigate } from 'react-router-dom';
import { fmtTime, useApi, useQuery } from '../api';
import { Loading, PageHeader, StatusChip } from '../components/common';

export function Jobs() {
  const { can } = useApi();
  const navigate = useNavigate();
  const [search, setSearch] = useState('');
  const q = useQuery(JobsDocument, { first: 100, filter: { search: search || null } });
  const rows = q.data?.jobs.edges.map((e) => e.node) ?? [];
  return (
    <>
      <PageHeader title="Jobs" actions={can('jobs:write') && <Button variant="contained" onClick={() => navigate('/jobs/new')}>New job</Button>} />
      <TextField label="Search" size="small" value={search} onChange={(e) => setSearch(e.target.value)} sx={{ mb: 1 }} />
      <Loading loading={q.loading} error={q.error} />
      <TableContainer component={Paper} variant="outlined">
        <Table size="small" aria-label="Jobs">
          <TableHead><TableRow>
            <TableCell>Serial</TableCell><TableCell>Name</TableCell><TableCell>Steps</TableCell><TableCell>Targets</TableCell>
            <TableCell>Last run</TableCell><TableCell>Next run</TableCell>
          </TableRow></TableHead>
          <TableBody>
            {rows.map((j) => {
              const last = j.executions.edges[0]?.node;
              return (
                <TableRow key={j.id} hover>
                  <TableCell>{j.serial}</TableCell>
                  <TableCell><Link component={RouterLink} to={`/jobs/${j.id}`}>{j.name}</Link></TableCell>
                  <TableCell>{j.steps.length}</TableCell>
                  <TableCell>{j.targetIds.length}</TableCell>
                  <TableCell>{last ? <Link component={RouterLink} to={`/executions/${last.id}`}>#{last.number} <StatusChip status={last.status} /> {fmtTime(last.createdAt)}</Link> : '—'}</TableCell>
                  <TableCell>{fmtTime(j.nextRunAt)}</TableCell>
                </TableRow>
              );
            })}
            {!rows.length && !q.loading && <TableRow><TableCell colSpan={6}>No jobs yet.</TableCell></TableRow>}
          </TableBody>
        </Table>
      </TableContainer>
    </>
  );
}
