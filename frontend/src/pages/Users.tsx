import {
  Box, Button, Checkbox, Dialog, DialogActions, DialogContent, DialogTitle, FormControlLabel, Paper, Switch, Table, TableBody,
  TableCell, TableContainer, TableHead, TableRow, TextField, Typography,
} from '@mui/material';
import { CreateUserDocument, RolesDocument, SetUserActiveDocument, SetUserRolesDocument, UsersDocument, unwrap } from '@opsconductor/frontend-adapter';
import { useState } from 'react';
import { fmtTime, useApi, useMutation, useQuery } from '../api';
import { Loading, PageHeader } from '../components/common';

export function Users() {
  const { can, notify } = useApi();
  const [search, setSearch] = useState('');
  const q = useQuery(UsersDocument, { first: 100, filter: { search: search || null } });
  const roles = useQuery(RolesDocument, {}, { skip: !can('roles:read') });
  const { run, busy } = useMutation();
  const [creating, setCreating] = useState(false);
  const [f, setF] = useState({ username: '', email: '', password: '', roles: new Set<string>(['viewer']) });
  const write = can('users:write');
  const create = async () => {
    const d = await run(CreateUserDocument, { input: { username: f.username, email: f.email, password: f.password, roles: [...f.roles] } },
      (d) => unwrap(d.createUser, 'UserCreated'));
    if (d) { notify(`User ${f.username} created`, 'success'); setCreating(false); q.reload(); }
  };
  const setActive = async (id: string, active: boolean) => {
    await run(SetUserActiveDocument, { id, active }, (d) => unwrap(d.setUserActive, 'UserUpdated'));
    q.reload();
  };
  const toggleRole = async (id: string, current: string[], role: string) => {
    const next = current.includes(role) ? current.filter((r) => r !== role) : [...current, role];
    await run(SetUserRolesDocument, { userId: id, roles: next }, (d) => unwrap(d.setUserRoles, 'UserUpdated'));
    q.reload();
  };
  const roleNames = roles.data?.roles.map((r) => r.name) ?? ['admin', 'operator', 'viewer', 'auditor'];
  return (
    <>
      <PageHeader title="Users and roles" actions={write && <Button variant="contained" onClick={() => setCreating(true)}>New user</Button>} />
      <TextField size="small" label="Search" value={search} onChange={(e) => setSearch(e.target.value)} sx={{ mb: 1 }} />
      <Loading loading={q.loading} error={q.error} />
      <TableContainer component={Paper} variant="outlined" sx={{ mb: 2 }}>
        <Table size="small" aria-label="Users">
          <TableHead><TableRow><TableCell>User</TableCell><TableCell>Email</TableCell><TableCell>Roles</TableCell><TableCell>Active</TableCell><TableCell>Last login</TableCell></TableRow></TableHead>
          <TableBody>
            {(q.data?.users.edges ?? []).map(({ node: u }) => (
              <TableRow key={u.id}>
                <TableCell>{u.username}</TableCell>
                <TableCell>{u.email}</TableCell>
                <TableCell>
                  {write ? roleNames.map((r) => (
                    <FormControlLabel key={r} label={r} control={<Checkbox size="small" checked={u.roles.includes(r)} disabled={busy}
                      onChange={() => void toggleRole(u.id, u.roles, r)} />} />
                  )) : u.roles.join(', ')}
                </TableCell>
                <TableCell>{write ? <Switch checked={u.isActive} onChange={(e) => void setActive(u.id, e.target.checked)} slotProps={{ input: { 'aria-label': `${u.username} active` } }} /> : (u.isActive ? 'yes' : 'no')}</TableCell>
                <TableCell>{fmtTime(u.lastLoginAt)}</TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      </TableContainer>
      {roles.data && (
        <>
          <Typography variant="h6" component="h2">Roles</Typography>
          <TableContainer component={Paper} variant="outlined">
            <Table size="small" aria-label="Roles">
              <TableHead><TableRow><TableCell>Role</TableCell><TableCell>Description</TableCell><TableCell>Permissions</TableCell></TableRow></TableHead>
              <TableBody>
                {roles.data.roles.map((r) => (
                  <TableRow key={r.name}><TableCell>{r.name}{r.isSystem ? ' (system)' : ''}</TableCell><TableCell>{r.description}</TableCell><TableCell>{r.permissions.join(', ')}</TableCell></TableRow>
                ))}
              </TableBody>
            </Table>
          </TableContainer>
        </>
      )}
      {creating && (
        <Dialog open onClose={() => setCreating(false)} aria-labelledby="new-user-title">
          <DialogTitle id="new-user-title">New user</DialogTitle>
          <DialogContent>
            <TextField label="Username" value={f.username} onChange={(e) => setF({ ...f, username: e.target.value })} fullWidth margin="dense" />
            <TextField label="Email" value={f.email} onChange={(e) => setF({ ...f, email: e.target.value })} fullWidth margin="dense" />
            <TextField label="Password" type="password" value={f.password} onChange={(e) => setF({ ...f, password: e.target.value })} fullWidth margin="dense" />
            <Box>{roleNames.map((r) => <FormControlLabel key={r} label={r} control={<Checkbox checked={f.roles.has(r)} onChange={() => {
              const n = new Set(f.roles); if (n.has(r)) n.delete(r); else n.add(r); setF({ ...f, roles: n });
            }} />} />)}</Box>
          </DialogContent>
          <DialogActions><Button onClick={() => setCreating(false)}>Cancel</Button><Button variant="contained" onClick={() => void create()} disabled={busy}>Create</Button></DialogActions>
        </Dialog>
      )}
    </>
  );
}
