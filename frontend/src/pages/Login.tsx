import { Alert, Box, Button, Paper, TextField, Typography } from '@mui/material';
import { errorMessage } from '@opsconductor/frontend-adapter';
import { useState, type FormEvent } from 'react';
import { useApi } from '../api';

export function Login() {
  const { client } = useApi();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await client.login(username, password);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Box component="main" sx={{ display: 'grid', placeItems: 'center', minHeight: '100vh', p: 2 }}>
      <Paper sx={{ p: 4, width: '100%', maxWidth: 380 }} component="form" onSubmit={submit} aria-labelledby="login-title">
        <Typography variant="h5" component="h1" id="login-title" gutterBottom>OpsConductor</Typography>
        <Typography variant="body2" color="text.secondary" gutterBottom>Log in to continue.</Typography>
        {error && <Alert severity="error" sx={{ my: 1 }} role="alert">{error}</Alert>}
        <TextField label="Username" name="username" autoComplete="username" fullWidth margin="normal" required
          value={username} onChange={(e) => setUsername(e.target.value)} autoFocus />
        <TextField label="Password" name="password" type="password" autoComplete="current-password" fullWidth margin="normal"
          required value={password} onChange={(e) => setPassword(e.target.value)} />
        <Button type="submit" variant="contained" fullWidth sx={{ mt: 2 }} disabled={busy} size="medium">Log in</Button>
        <Typography variant="caption" color="text.secondary" component="p" sx={{ mt: 2 }}>
          Sessions end after a period of inactivity; you are warned before and can stay logged in.
        </Typography>
      </Paper>
    </Box>
  );
}
