import { Alert, Box, Button, Card, CardContent, Grid, Table, TableBody, TableCell, TableHead, TableRow, TextField, Typography } from '@mui/material';
import {
  ApiKeysDocument, ChangePasswordDocument, CreateApiKeyDocument, MeDocument, MySessionsDocument, RevokeApiKeyDocument, RevokeSessionDocument, unwrap,
} from '@opsconductor/frontend-adapter';
import { useState } from 'react';
import { fmtTime, useApi, useMutation, useQuery } from '../api';
import { Loading, PageHeader } from '../components/common';

export function Profile() {
  const { notify } = useApi();
  const me = useQuery(MeDocument, {});
  const sessions = useQuery(MySessionsDocument, {});
  const keys = useQuery(ApiKeysDocument, {});
  const { run, busy } = useMutation();
  const [pw, setPw] = useState({ current: '', next: '' });
  const [keyName, setKeyName] = useState('');
  const [secret, setSecret] = useState<string | null>(null);
  const u = me.data?.me;
  const createKey = async () => {
    const d = await run(CreateApiKeyDocument, { name: keyName, permissions: u?.permissions.filter((p) => p.endsWith(':read')) ?? [], expiresInDays: 90 },
      (d) => unwrap(d.createApiKey, 'ApiKeyCreated'));
    if (d?.createApiKey.__typename === 'ApiKeyCreated') { setSecret(d.createApiKey.secret); keys.reload(); }
  };
  return (
    <>
      <PageHeader title="My profile" />
      <Loading loading={me.loading} error={me.error} />
      <Grid container spacing={2}>
        <Grid size={{ xs: 12, md: 6 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">{u?.displayName ?? u?.username}</Typography>
            <Typography>Username: {u?.username} · Email: {u?.email}</Typography>
            <Typography>Roles: {u?.roles.join(', ')} · Time zone: {u?.timezone}</Typography>
            <Typography variant="body2" color="text.secondary">Permissions: {u?.permissions.join(', ')}</Typography>
          </CardContent></Card>
        </Grid>
        <Grid size={{ xs: 12, md: 6 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Change password</Typography>
            <TextField size="small" type="password" label="Current password" value={pw.current} onChange={(e) => setPw({ ...pw, current: e.target.value })} fullWidth margin="dense" />
            <TextField size="small" type="password" label="New password" value={pw.next} onChange={(e) => setPw({ ...pw, next: e.target.value })} fullWidth margin="dense" />
            <Button variant="outlined" disabled={busy || !pw.next} onClick={() => void run(ChangePasswordDocument, pw, (d) => unwrap(d.changePassword, 'PasswordChanged')).then((d) => d && notify('Password changed; your other sessions ended', 'success'))}>Change</Button>
          </CardContent></Card>
        </Grid>
        <Grid size={12}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Sessions</Typography>
            <Table size="small" aria-label="Sessions">
              <TableHead><TableRow><TableCell>Started</TableCell><TableCell>Last activity</TableCell><TableCell>Ends</TableCell><TableCell>From</TableCell><TableCell /></TableRow></TableHead>
              <TableBody>
                {(sessions.data?.mySessions ?? []).map((s) => (
                  <TableRow key={s.id}>
                    <TableCell>{fmtTime(s.createdAt)}{s.current ? ' (this one)' : ''}</TableCell>
                    <TableCell>{fmtTime(s.lastActivityAt)}</TableCell>
                    <TableCell>{fmtTime(s.endsAt)}</TableCell>
                    <TableCell>{s.ipAddress ?? ''} {s.userAgent?.slice(0, 40) ?? ''}</TableCell>
                    <TableCell>{!s.current && <Button onClick={() => void run(RevokeSessionDocument, { id: s.id }).then(() => sessions.reload())}>End</Button>}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </CardContent></Card>
        </Grid>
        <Grid size={12}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">API keys</Typography>
            {secret && <Alert severity="warning" onClose={() => setSecret(null)}>Copy the key now; it is not shown again: <code data-testid="api-key-secret">{secret}</code></Alert>}
            <Box sx={{ display: 'flex', gap: 1, my: 1 }}>
              <TextField size="small" label="New key name" value={keyName} onChange={(e) => setKeyName(e.target.value)} />
              <Button variant="outlined" disabled={!keyName || busy} onClick={() => void createKey()}>Create read-only key</Button>
            </Box>
            <Table size="small" aria-label="API keys">
              <TableHead><TableRow><TableCell>Name</TableCell><TableCell>Permissions</TableCell><TableCell>Expires</TableCell><TableCell /></TableRow></TableHead>
              <TableBody>
                {(keys.data?.apiKeys ?? []).map((k) => (
                  <TableRow key={k.id}>
                    <TableCell>{k.name}</TableCell><TableCell>{k.permissions.join(', ')}</TableCell><TableCell>{fmtTime(k.expiresAt)}</TableCell>
                    <TableCell>{k.revokedAt ? 'revoked' : <Button onClick={() => void run(RevokeApiKeyDocument, { id: k.id }).then(() => keys.reload())}>Revoke</Button>}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </CardContent></Card>
        </Grid>
      </Grid>
    </>
  );
}
