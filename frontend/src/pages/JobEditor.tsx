import {
  Alert, Box, Button, Card, CardContent, Checkbox, Grid, IconButton, List, ListItem, ListItemIcon,
  ListItemText, MenuItem, TextField, Typography,
} from '@mui/material';
import {
  CreateJobDocument, JobDocument, JobPlanDocument, TargetsDocument, UpdateJobDocument, ValidateJobDocument, errorMessage, unwrap,
  type CreateJobInput, type JobStepInput,
} from '@opsconductor/frontend-adapter';
import { useEffect, useState } from 'react';
import { useNavigate, useParams } from 'react-router-dom';
import { useApi, useMutation, useQuery } from '../api';
import { Loading, PageHeader } from '../components/common';
import { RunDialog } from './RunDialog';

interface StepForm {
  name: string;
  type: 'command' | 'script' | 'file_transfer';
  command: string;
  timeoutSeconds: string;
  continueOnError: boolean;
  interpreter: string;
  body: string;
  direction: string;
  source: string;
  destination: string;
  content: string;
}

const emptyStep = (n: number): StepForm => ({
  name: `step ${n}`, type: 'command', command: '', timeoutSeconds: '300', continueOnError: false,
  interpreter: 'bash', body: '', direction: 'upload', source: '', destination: '', content: '',
});

function toInput(s: StepForm): JobStepInput {
  const base = { name: s.name, type: s.type, timeoutSeconds: Number(s.timeoutSeconds) || null, continueOnError: s.continueOnError };
  if (s.type === 'script') return { ...base, command: '', script: { interpreter: s.interpreter, body: s.body, arguments: [] } };
  if (s.type === 'file_transfer')
    return { ...base, command: '', transfer: { direction: s.direction, destination: s.destination, source: s.source || null, content: s.content || null } };
  return { ...base, command: s.command };
}

function TargetPicker({ value, onChange }: { value: string[]; onChange: (ids: string[]) => void }) {
  const [search, setSearch] = useState('');
  const [environment, setEnvironment] = useState('');
  const q = useQuery(TargetsDocument, { first: 100, filter: { search: search || null, environment: environment || null } });
  const rows = q.data?.targets.edges.map((e) => e.node) ?? [];
  const sel = new Set(value);
  const toggle = (id: string) => onChange(sel.has(id) ? value.filter((v) => v !== id) : [...value, id]);
  return (
    <Box>
      <Box sx={{ display: 'flex', gap: 1 }}>
        <TextField size="small" label="Find targets" value={search} onChange={(e) => setSearch(e.target.value)} />
        <TextField size="small" select label="Environment" value={environment} onChange={(e) => setEnvironment(e.target.value)} sx={{ minWidth: 140 }}>
          <MenuItem value="">any</MenuItem>
          {['production', 'staging', 'development', 'testing'].map((e) => <MenuItem key={e} value={e}>{e}</MenuItem>)}
        </TextField>
        <Button onClick={() => onChange([...new Set([...value, ...rows.map((r) => r.id)])])}>Add all shown</Button>
      </Box>
      <Typography variant="body2" sx={{ mt: 1 }}>{value.length} selected</Typography>
      <List dense component="div" role="group" sx={{ maxHeight: 260, overflow: 'auto', border: 1, borderColor: 'divider', borderRadius: 1 }} aria-label="Target picker">
        {rows.map((t) => (
          <ListItem key={t.id} component="div" dense>
            <ListItemIcon><Checkbox edge="start" checked={sel.has(t.id)} onChange={() => toggle(t.id)} slotProps={{ input: { 'aria-label': `Pick ${t.name}` } }} /></ListItemIcon>
            <ListItemText primary={t.name} secondary={`${t.serial} · ${t.osType} · ${t.environment} · ${t.tags.join(', ')}`} />
          </ListItem>
        ))}
      </List>
    </Box>
  );
}

export function JobEditor() {
  const { id } = useParams();
  const navigate = useNavigate();
  const { can, client, notify } = useApi();
  const { run, busy } = useMutation();
  const q = useQuery(JobDocument, { id: id ?? '' }, { skip: !id });
  const job = q.data?.job;
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [steps, setSteps] = useState<StepForm[]>([emptyStep(1)]);
  const [targetIds, setTargetIds] = useState<string[]>([]);
  const [selTags, setSelTags] = useState('');
  const [maxParallel, setMaxParallel] = useState('50');
  const [params, setParams] = useState('');
  const [check, setCheck] = useState<{ severity: 'success' | 'error' | 'warning' | 'info'; text: string } | null>(null);
  const [running, setRunning] = useState(false);
  const write = can('jobs:write');

  useEffect(() => {
    if (!job) return;
    setName(job.name);
    setDescription(job.description ?? '');
    setSteps(job.steps.map((s) => ({
      ...emptyStep(s.order), name: s.name, type: s.type as StepForm['type'], command: s.command, timeoutSeconds: String(s.timeoutSeconds),
      continueOnError: s.continueOnError, interpreter: s.script?.interpreter ?? 'bash', body: s.script?.body ?? '',
      direction: s.transfer?.direction ?? 'upload', source: s.transfer?.source ?? '', destination: s.transfer?.destination ?? '',
      content: s.transfer?.content ?? '',
    })));
    setTargetIds(job.targetIds);
    setSelTags(job.targetSelector?.tags.join(', ') ?? '');
    setMaxParallel(String(job.policy.maxParallel));
    setParams(job.parameters.map((p) => `${p.name}=${p.default ?? ''}`).join('\n'));
  }, [job]);

  const input = (): CreateJobInput => {
    const tags = selTags.split(',').map((t) => t.trim()).filter(Boolean);
    return {
      name, description: description || null, steps: steps.map(toInput), targetIds,
      policy: { maxParallel: Number(maxParallel) || null },
      targetSelector: tags.length ? { tags, osTypes: [], environments: [] } : null,
      parameters: params.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
        const [n, ...rest] = l.split('=');
        return { name: n.trim(), type: 'string', required: false, default: rest.join('=') || null, choices: [] };
      }),
    };
  };
  const setStep = (i: number, patch: Partial<StepForm>) => setSteps((s) => s.map((x, j) => (j === i ? { ...x, ...patch } : x)));

  const validate = async () => {
    try {
      const d = await client.query(ValidateJobDocument, { input: input() });
      const r = d.validateJob;
      if (r.__typename === 'JobValid')
        setCheck(r.dangerous.length
          ? { severity: 'warning', text: `Valid; dangerous: ${r.dangerous.map((f) => `${f.stepName}: ${f.reason}`).join('; ')}` }
          : { severity: 'success', text: `Valid: ${r.targetIds.length} targets, ${steps.length} steps` });
      else setCheck({ severity: 'error', text: 'message' in r ? r.message : (r as { __typename: string }).__typename });
    } catch (e) {
      setCheck({ severity: 'error', text: errorMessage(e) });
    }
  };
  const dryRun = async () => {
    if (!id) return;
    try {
      const d = await client.query(JobPlanDocument, { jobId: id });
      const p = d.jobPlan;
      if (p.__typename === 'JobPlan')
        setCheck({ severity: 'info', text: `Plan v${p.version}: ${p.steps.map((s) => `${s.order}. ${s.name}: ${s.command || s.type}`).join(' | ')} on ${p.targetIds.length} targets` });
      else setCheck({ severity: 'error', text: 'message' in p ? p.message : (p as { __typename: string }).__typename });
    } catch (e) {
      setCheck({ severity: 'error', text: errorMessage(e) });
    }
  };
  const save = async () => {
    if (id) {
      const d = await run(UpdateJobDocument, { id, input: input() }, (d) => unwrap(d.updateJob, 'JobUpdated'));
      if (d) { notify('Job saved', 'success'); q.reload(); }
    } else {
      const d = await run(CreateJobDocument, { input: input() }, (d) => unwrap(d.createJob, 'JobCreated'));
      if (d?.createJob.__typename === 'JobCreated') {
        notify(`Job ${d.createJob.job.serial} created`, 'success');
        navigate(`/jobs/${d.createJob.job.id}`);
      }
    }
  };

  return (
    <>
      <PageHeader title={id ? (job ? `${job.name} (${job.serial}, v${job.version})` : 'Job') : 'New job'} actions={
        <>
          {write && <Button variant="outlined" onClick={() => void validate()}>Validate</Button>}
          {id && <Button variant="outlined" onClick={() => void dryRun()}>Dry-run plan</Button>}
          {write && <Button variant="contained" onClick={() => void save()} disabled={busy || !name}>Save</Button>}
          {id && job && can('jobs:execute') && <Button variant="contained" color="secondary" onClick={() => setRunning(true)}>Run…</Button>}
        </>
      } />
      <Loading loading={q.loading} error={q.error} />
      {check && <Alert severity={check.severity} sx={{ mb: 1 }} role="status" data-testid="job-check">{check.text}</Alert>}
      {/* an existing job's form only once it is loaded: typing into the empty form would be overwritten */}
      {(!id || job) && (<Grid container spacing={2}>
        <Grid size={{ xs: 12, md: 7 }}>
          <Card variant="outlined"><CardContent>
            <TextField label="Job name" value={name} onChange={(e) => setName(e.target.value)} fullWidth margin="dense" required disabled={!write} />
            <TextField label="Description" value={description} onChange={(e) => setDescription(e.target.value)} fullWidth margin="dense" disabled={!write} />
            <Typography variant="h6" component="h2" sx={{ mt: 2 }}>Steps</Typography>
            {steps.map((s, i) => (
              <Box key={i} sx={{ border: 1, borderColor: 'divider', borderRadius: 1, p: 1, my: 1 }} data-testid="step">
                <Box sx={{ display: 'flex', gap: 1, flexWrap: 'wrap' }}>
                  <TextField size="small" label="Step name" value={s.name} onChange={(e) => setStep(i, { name: e.target.value })} />
                  <TextField size="small" select label="Type" value={s.type} onChange={(e) => setStep(i, { type: e.target.value as StepForm['type'] })} sx={{ minWidth: 140 }}>
                    <MenuItem value="command">command</MenuItem><MenuItem value="script">script</MenuItem><MenuItem value="file_transfer">file transfer</MenuItem>
                  </TextField>
                  <TextField size="small" label="Timeout (s)" value={s.timeoutSeconds} onChange={(e) => setStep(i, { timeoutSeconds: e.target.value })} sx={{ width: 110 }} />
                  <Box sx={{ display: 'flex', alignItems: 'center' }}>
                    <Checkbox checked={s.continueOnError} onChange={(e) => setStep(i, { continueOnError: e.target.checked })} slotProps={{ input: { 'aria-label': 'Continue on error' } }} />
                    <Typography variant="body2">continue on error</Typography>
                  </Box>
                  {write && steps.length > 1 && <IconButton aria-label={`Remove step ${i + 1}`} onClick={() => setSteps((x) => x.filter((_, j) => j !== i))}>✕</IconButton>}
                </Box>
                {s.type === 'command' && <TextField label="Command" value={s.command} onChange={(e) => setStep(i, { command: e.target.value })}
                  fullWidth margin="dense" multiline slotProps={{ htmlInput: { spellCheck: false, style: { fontFamily: 'monospace' } } }} />}
                {s.type === 'script' && (
                  <>
                    <TextField size="small" select label="Interpreter" value={s.interpreter} onChange={(e) => setStep(i, { interpreter: e.target.value })} sx={{ mt: 1, minWidth: 140 }}>
                      {['bash', 'sh', 'python', 'powershell'].map((x) => <MenuItem key={x} value={x}>{x}</MenuItem>)}
                    </TextField>
                    <TextField label="Script" value={s.body} onChange={(e) => setStep(i, { body: e.target.value })} fullWidth margin="dense" multiline minRows={4}
                      slotProps={{ htmlInput: { spellCheck: false, style: { fontFamily: 'monospace' } } }} />
                  </>
                )}
                {s.type === 'file_transfer' && (
                  <Box sx={{ display: 'flex', gap: 1, flexWrap: 'wrap', mt: 1 }}>
                    <TextField size="small" select label="Direction" value={s.direction} onChange={(e) => setStep(i, { direction: e.target.value })} sx={{ minWidth: 120 }}>
                      <MenuItem value="upload">upload</MenuItem><MenuItem value="download">download</MenuItem>
                    </TextField>
                    {s.direction === 'download' && <TextField size="small" label="Remote source path" value={s.source} onChange={(e) => setStep(i, { source: e.target.value })} />}
                    <TextField size="small" label={s.direction === 'upload' ? 'Remote destination path' : 'Label'} value={s.destination} onChange={(e) => setStep(i, { destination: e.target.value })} />
                    {s.direction === 'upload' && <TextField label="File content" value={s.content} onChange={(e) => setStep(i, { content: e.target.value })} fullWidth multiline minRows={2} />}
                  </Box>
                )}
              </Box>
            ))}
            {write && <Button onClick={() => setSteps((s) => [...s, emptyStep(s.length + 1)])}>Add step</Button>}
            <Typography variant="h6" component="h2" sx={{ mt: 2 }}>Parameters and policy</Typography>
            <TextField label="Parameters (name=default per line)" value={params} onChange={(e) => setParams(e.target.value)} fullWidth multiline margin="dense" />
            <TextField label="Max parallel targets" value={maxParallel} onChange={(e) => setMaxParallel(e.target.value)} margin="dense" />
          </CardContent></Card>
        </Grid>
        <Grid size={{ xs: 12, md: 5 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Targets</Typography>
            <TargetPicker value={targetIds} onChange={setTargetIds} />
            <TextField label="Also every target tagged (comma separated)" value={selTags} onChange={(e) => setSelTags(e.target.value)} fullWidth margin="dense" />
          </CardContent></Card>
        </Grid>
      </Grid>)}
      {running && job && <RunDialog job={job} onClose={() => setRunning(false)} />}
    </>
  );
}
