import {
  Box, Button, Checkbox, MenuItem, Paper, Table, TableBody, TableCell, TableContainer, TableHead, TableRow,
  TableSortLabel, TextField, Typography,
} from '@mui/material';
import {
  BulkTestConnectionsDocument, BulkUpdateTargetsDocument, TargetsDocument, TestConnectionDocument, unwrap,
  type TargetSortField,
} from '@opsconductor/frontend-adapter';
import { useState } from 'react';
import { Link as RouterLink, useNavigate, useSearchParams } from 'react-router-dom';
import { useApi, useMutation, useQuery } from '../api';
import { HealthChip, Loading, PageHeader } from '../components/common';
import { ENVIRONMENTS, TargetDialog } from './TargetDialog';

const PAGE = 25;
const HEALTH = ['HEALTHY', 'WARNING', 'CRITICAL', 'UNKNOWN'];

export function Targets() {
  const { can, notify } = useApi();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [search, setSearch] = useState('');
  const [environment, setEnvironment] = useState('');
  const [health, setHealth] = useState(params.get('health') ?? '');
  const [sort, setSort] = useState<{ field: TargetSortField; descending: boolean }>({ field: 'NAME', descending: false });
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [creating, setCreating] = useState(false);
  const [bulkEnv, setBulkEnv] = useState('');
  const { run, busy } = useMutation();
  const filter = { search: search || null, environment: environment || null, health: (health || null) as never };
  const q = useQuery(TargetsDocument, { first: PAGE, after: cursors[cursors.length - 1], filter, sort });
  const rows = q.data?.targets.edges.map((e) => e.node) ?? [];
  const write = can('targets:write');
  const sortBy = (field: TargetSortField) =>
    setSort((s) => ({ field, descending: s.field === field ? !s.descending : false }));
  const resetPaging = () => setCursors([null]);

  const test = async (id: string) => {
    const d = await run(TestConnectionDocument, { targetId: id });
    if (d) notify(`${d.testConnection.ok ? 'Connected' : 'Failed'}: ${d.testConnection.message}`, d.testConnection.ok ? 'success' : 'error');
    q.reload();
  };
  const bulkTest = async () => {
    const d = await run(BulkTestConnectionsDocument, { ids: [...selected] });
    if (d) notify(`${d.bulkTestConnections.filter((t) => t.result.ok).length} of ${d.bulkTestConnections.length} reachable`, 'info');
    q.reload();
  };
  const bulkEdit = async () => {
    const d = await run(BulkUpdateTargetsDocument, { ids: [...selected], input: { environment: bulkEnv } },
      (d) => unwrap(d.bulkUpdateTargets, 'TargetsBulkUpdated'));
    if (d) notify(`${selected.size} targets moved to ${bulkEnv}`, 'success');
    q.reload();
  };

  const col = (field: TargetSortField, label: string) => (
    <TableCell sortDirection={sort.field === field ? (sort.descending ? 'desc' : 'asc') : false}>
      <TableSortLabel active={sort.field === field} direction={sort.descending ? 'desc' : 'asc'} onClick={() => sortBy(field)}>
        {label}
      </TableSortLabel>
    </TableCell>
  );

  return (
    <>
      <PageHeader title="Targets" actions={write && <Button variant="contained" onClick={() => setCreating(true)}>New target</Button>} />
      <Box sx={{ display: 'flex', gap: 1, mb: 1, flexWrap: 'wrap' }}>
        <TextField label="Search" size="small" value={search} onChange={(e) => { setSearch(e.target.value); resetPaging(); }} />
        <TextField select label="Environment" size="small" value={environment} sx={{ minWidth: 150 }}
          onChange={(e) => { setEnvironment(e.target.value); resetPaging(); }}>
          <MenuItem value="">any</MenuItem>
          {ENVIRONMENTS.map((e) => <MenuItem key={e} value={e}>{e}</MenuItem>)}
        </TextField>
        <TextField select label="Health" size="small" value={health} sx={{ minWidth: 130 }}
          onChange={(e) => { setHealth(e.target.value); resetPaging(); }}>
          <MenuItem value="">any</MenuItem>
          {HEALTH.map((h) => <MenuItem key={h} value={h}>{h}</MenuItem>)}
        </TextField>
        {write && selected.size > 0 && (
          <>
            <Button variant="outlined" onClick={() => void bulkTest()} disabled={busy}>Test {selected.size} selected</Button>
            <TextField select label="Set environment" size="small" value={bulkEnv} sx={{ minWidth: 160 }} onChange={(e) => setBulkEnv(e.target.value)}>
              {ENVIRONMENTS.map((e) => <MenuItem key={e} value={e}>{e}</MenuItem>)}
            </TextField>
            <Button variant="outlined" disabled={!bulkEnv || busy} onClick={() => void bulkEdit()}>Apply to selected</Button>
          </>
        )}
      </Box>
      <Loading loading={q.loading} error={q.error} />
      <TableContainer component={Paper} variant="outlined">
        <Table size="small" aria-label="Targets">
          <TableHead>
            <TableRow>
              {write && <TableCell padding="checkbox"><Checkbox slotProps={{ input: { 'aria-label': 'Select all' } }}
                checked={rows.length > 0 && rows.every((r) => selected.has(r.id))}
                onChange={(e) => setSelected(e.target.checked ? new Set(rows.map((r) => r.id)) : new Set())} /></TableCell>}
              {col('SERIAL', 'Serial')}
              {col('NAME', 'Name')}
              {col('OS_TYPE', 'OS')}
              {col('ENVIRONMENT', 'Environment')}
              <TableCell>Address</TableCell>
              <TableCell>Tags</TableCell>
              {col('HEALTH', 'Health')}
              {write && <TableCell>Actions</TableCell>}
            </TableRow>
          </TableHead>
          <TableBody>
            {rows.map((t) => {
              const m = t.communicationMethods.find((x) => x.isPrimary) ?? t.communicationMethods[0];
              return (
                <TableRow key={t.id} hover data-testid="target-row">
                  {write && <TableCell padding="checkbox"><Checkbox slotProps={{ input: { 'aria-label': `Select ${t.name}` } }} checked={selected.has(t.id)}
                    onChange={(e) => setSelected((s) => { const n = new Set(s); if (e.target.checked) n.add(t.id); else n.delete(t.id); return n; })} /></TableCell>}
                  <TableCell>{t.serial}</TableCell>
                  <TableCell><RouterLink to={`/targets/${t.id}`}>{t.name}</RouterLink></TableCell>
                  <TableCell>{t.osType}</TableCell>
                  <TableCell>{t.environment}</TableCell>
                  <TableCell>{m ? `${m.type.toLowerCase()}://${m.host}:${m.port}` : '—'}</TableCell>
                  <TableCell>{t.tags.join(', ')}</TableCell>
                  <TableCell><HealthChip health={t.healthStatus} /></TableCell>
                  {write && <TableCell><Button onClick={() => void test(t.id)} disabled={busy} aria-label={`Test connection to ${t.name}`}>Test</Button></TableCell>}
                </TableRow>
              );
            })}
            {!rows.length && !q.loading && <TableRow><TableCell colSpan={9}>No targets match.</TableCell></TableRow>}
          </TableBody>
        </Table>
      </TableContainer>
      <Box sx={{ display: 'flex', gap: 1, alignItems: 'center', mt: 1 }}>
        <Typography variant="body2">{q.data?.targets.totalCount ?? 0} targets · page {cursors.length}</Typography>
        <Button disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>Previous</Button>
        <Button disabled={!q.data?.targets.pageInfo.hasNextPage}
          onClick={() => setCursors((c) => [...c, q.data?.targets.pageInfo.endCursor ?? null])}>Next</Button>
      </Box>
      {creating && <TargetDialog open onClose={() => setCreating(false)} onSaved={(id) => { setCreating(false); navigate(`/targets/${id}`); }} />}
    </>
  );
}
