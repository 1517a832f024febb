import {
  Button, Dialog, DialogActions, DialogContent, DialogTitle, Grid, MenuItem, TextField,
} from '@mui/material';
import { CreateTargetDocument, UpdateTargetDocument, unwrap } from '@opsconductor/frontend-adapter';
import { useState } from 'react';
import { useApi, useMutation } from '../api';

export const ENVIRONMENTS = ['production', 'staging', 'development', 'testing'];
const METHODS = ['SSH', 'WINRM', 'TELNET', 'SNMP', 'REST_API', 'POSTGRESQL', 'MYSQL'];
const DEFAULT_PORTS: Record<string, number> = { SSH: 22, WINRM: 5985, TELNET: 23, SNMP: 161, REST_API: 443, POSTGRESQL: 5432, MYSQL: 3306 };

export interface EditableTarget {
  id: string;
  name: string;
  osType: string;
  environment: string;
  description?: string | null;
  tags: string[];
}

export function TargetDialog({ open, onClose, onSaved, target }: {
  open: boolean;
  onClose: () => void;
  onSaved: (id: string) => void;
  target?: EditableTarget;
}) {
  const { notify } = useApi();
  const { run, busy } = useMutation();
  const [f, setF] = useState({
    name: target?.name ?? '',
    osType: target?.osType ?? 'linux',
    environment: target?.environment ?? 'development',
    description: target?.description ?? '',
    tags: (target?.tags ?? []).join(', '),
    method: 'SSH',
    host: '',
    port: '22',
    credType: 'PASSWORD',
    username: '',
    secret: '',
  });
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF((s) => ({ ...s, [k]: e.target.value }));
  const tags = f.tags.split(',').map((t) => t.trim()).filter(Boolean);
  const save = async () => {
    if (target) {
      const d = await run(UpdateTargetDocument, {
        id: target.id,
        input: { name: f.name, osType: f.osType, environment: f.environment, description: f.description, tags },
      }, (d) => unwrap(d.updateTarget, 'TargetUpdated'));
      if (d) { notify('Target saved', 'success'); onSaved(target.id); }
      return;
    }
    const credential = f.username
      ? { type: f.credType as 'PASSWORD', username: f.username, ...(f.credType === 'SSH_KEY' ? { privateKey: f.secret } : { password: f.secret }) }
      : null;
    const d = await run(CreateTargetDocument, {
      input: {
        name: f.name, osType: f.osType, environment: f.environment, description: f.description || null, tags,
        methods: [{ type: f.method as 'SSH', host: f.host, port: Number(f.port) || null, credential }],
      },
    }, (d) => unwrap(d.createTarget, 'TargetCreated'));
    if (d && d.createTarget.__typename === 'TargetCreated') {
      notify(`Target ${d.createTarget.target.serial} created`, 'success');
      onSaved(d.createTarget.target.id);
    }
  };
  return (
    <Dialog open={open} onClose={onClose} maxWidth="sm" fullWidth aria-labelledby="target-dialog-title">
      <DialogTitle id="target-dialog-title">{target ? `Edit ${target.name}` : 'New target'}</DialogTitle>
      <DialogContent>
        <Grid container spacing={2} sx={{ mt: 0.5 }}>
          <Grid size={{ xs: 12, sm: 6 }}><TextField label="Name" value={f.name} onChange={set('name')} fullWidth required /></Grid>
          <Grid size={{ xs: 6, sm: 3 }}><TextField label="OS type" value={f.osType} onChange={set('osType')} fullWidth /></Grid>
          <Grid size={{ xs: 6, sm: 3 }}>
            <TextField select label="Environment" value={f.environment} onChange={set('environment')} fullWidth>
              {ENVIRONMENTS.map((e) => <MenuItem key={e} value={e}>{e}</MenuItem>)}
            </TextField>
          </Grid>
          <Grid size={12}><TextField label="Description" value={f.description} onChange={set('description')} fullWidth /></Grid>
          <Grid size={12}><TextField label="Tags (comma separated)" value={f.tags} onChange={set('tags')} fullWidth /></Grid>
          {!target && (
            <>
              <Grid size={{ xs: 6, sm: 3 }}>
                <TextField select label="Method" value={f.method} fullWidth
                  onChange={(e) => setF((s) => ({ ...s, method: e.target.value, port: String(DEFAULT_PORTS[e.target.value] ?? '') }))}>
                  {METHODS.map((m) => <MenuItem key={m} value={m}>{m}</MenuItem>)}
                </TextField>
              </Grid>
              <Grid size={{ xs: 6, sm: 6 }}><TextField label="Host" value={f.host} onChange={set('host')} fullWidth required /></Grid>
              <Grid size={{ xs: 6, sm: 3 }}><TextField label="Port" value={f.port} onChange={set('port')} fullWidth /></Grid>
              <Grid size={{ xs: 6, sm: 4 }}>
                <TextField select label="Credential" value={f.credType} onChange={set('credType')} fullWidth>
                  <MenuItem value="PASSWORD">Password</MenuItem>
                  <MenuItem value="SSH_KEY">SSH key</MenuItem>
                  <MenuItem value="API_TOKEN">API token</MenuItem>
                </TextField>
              </Grid>
              <Grid size={{ xs: 12, sm: 8 }}><TextField label="Username" value={f.username} onChange={set('username')} fullWidth /></Grid>
              <Grid size={12}>
                <TextField label={f.credType === 'SSH_KEY' ? 'Private key' : 'Password / secret'} value={f.secret} onChange={set('secret')}
                  fullWidth type={f.credType === 'SSH_KEY' ? 'text' : 'password'} multiline={f.credType === 'SSH_KEY'}
                  minRows={f.credType === 'SSH_KEY' ? 4 : undefined} slotProps={{ htmlInput: { spellCheck: false } }} />
              </Grid>
            </>
          )}
        </Grid>
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="contained" onClick={() => void save()} disabled={busy || !f.name || (!target && !f.host)}>Save</Button>
      </DialogActions>
    </Dialog>
  );
}
