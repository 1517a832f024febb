import {
  Alert, Button, Checkbox, Dialog, DialogActions, DialogContent, DialogTitle, FormControlLabel, List, ListItem,
  TextField, Typography,
} from '@mui/material';
import { JobPlanDocument, RunJobDocument, unwrap } from '@opsconductor/frontend-adapter';
import { useMemo, useState } from 'react';
import { useNavigate } from 'react-router-dom';
import { useApi, useMutation, useQuery } from '../api';

export interface RunnableJob {
  id: string;
  name: string;
  parameters: { name: string; type: string; required: boolean; default?: string | null; description?: string | null }[];
  targets: { id: string; name: string }[];
}

export function RunDialog({ job, onClose }: { job: RunnableJob; onClose: () => void }) {
  const navigate = useNavigate();
  const { notify } = useApi();
  const { run, busy } = useMutation();
  const [params, setParams] = useState<Record<string, string>>(
    Object.fromEntries(job.parameters.map((p) => [p.name, p.default ?? ''])),
  );
  const [subset, setSubset] = useState<Set<string>>(new Set(job.targets.map((t) => t.id)));
  const [confirm, setConfirm] = useState(false);
  const idempotencyKey = useMemo(() => crypto.randomUUID(), []);
  const all = subset.size === job.targets.length;
  const targetIds = all ? null : [...subset];
  const parameters = job.parameters.length ? params : null;
  const plan = useQuery(JobPlanDocument, { jobId: job.id, parameters, targetIds });
  const p = plan.data?.jobPlan;
  const dangerous = p?.__typename === 'JobPlan' ? p.dangerous : [];
  const start = async () => {
    const d = await run(RunJobDocument, { jobId: job.id, targetIds, parameters, confirmDangerous: confirm || null, idempotencyKey },
      (d) => unwrap(d.runJob, ['ExecutionStarted', 'ExecutionQueued']));
    const r = d?.runJob;
    if (r && (r.__typename === 'ExecutionStarted' || r.__typename === 'ExecutionQueued')) {
      notify(`Run #${r.execution.number} started`, 'success');
      navigate(`/executions/${r.execution.id}`);
    }
  };
  return (
    <Dialog open onClose={onClose} maxWidth="sm" fullWidth aria-labelledby="run-title">
      <DialogTitle id="run-title">Run {job.name}</DialogTitle>
      <DialogContent>
        {job.parameters.map((prm) => (
          <TextField key={prm.name} label={`${prm.name}${prm.required ? ' *' : ''}`} helperText={prm.description} fullWidth margin="dense"
            value={params[prm.name] ?? ''} onChange={(e) => setParams((s) => ({ ...s, [prm.name]: e.target.value }))} />
        ))}
        <Typography variant="subtitle2" sx={{ mt: 1 }}>Targets ({subset.size} of {job.targets.length})</Typography>
        <List dense sx={{ maxHeight: 200, overflow: 'auto' }}>
          {job.targets.map((t) => (
            <ListItem key={t.id} disablePadding>
              <FormControlLabel label={t.name} control={<Checkbox size="small" checked={subset.has(t.id)}
                onChange={(e) => setSubset((s) => { const n = new Set(s); if (e.target.checked) n.add(t.id); else n.delete(t.id); return n; })} />} />
            </ListItem>
          ))}
        </List>
        {p && p.__typename !== 'JobPlan' && 'message' in p && <Alert severity="error">{p.message}</Alert>}
        {p?.__typename === 'JobPlan' && (
          <Typography variant="body2" color="text.secondary">Plan: version {p.version}, {p.steps.length} steps on {p.targetIds.length} targets.</Typography>
        )}
        {dangerous.length > 0 && (
          <Alert severity="warning" sx={{ mt: 1 }} role="alert">
            <Typography variant="subtitle2">Dangerous commands</Typography>
            {dangerous.map((f, i) => <div key={i}><b>{f.stepName}</b>: {f.reason} (<code>{f.match}</code>)</div>)}
            <FormControlLabel control={<Checkbox checked={confirm} onChange={(e) => setConfirm(e.target.checked)} />}
              label="I understand; run these commands" />
          </Alert>
        )}
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="contained" onClick={() => void start()} disabled={busy || subset.size === 0 || (dangerous.length > 0 && !confirm)}>
          Run now
        </Button>
      </DialogActions>
    </Dialog>
  );
}
