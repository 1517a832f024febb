import {
  AppBar, Box, Button, Dialog, DialogActions, DialogContent, DialogContentText, DialogTitle, Drawer, IconButton,
  List, ListItemButton, ListItemText, Toolbar, Typography, useMediaQuery,
} from '@mui/material';
import type { IdleState } from '@opsconductor/frontend-adapter';
import { useEffect, useRef, useState } from 'react';
import { Link as RouterLink, Navigate, Route, Routes, useLocation, useNavigate } from 'react-router-dom';
import { useApi } from './api';
import { Dashboard } from './pages/Dashboard';
import { Executions } from './pages/Executions';
import { JobEditor } from './pages/JobEditor';
import { Jobs } from './pages/Jobs';
import { Login } from './pages/Login';
import { Profile } from './pages/Profile';
import { RunPage } from './pages/RunPage';
import { ScheduleDetail, Schedules } from './pages/Schedules';
import { System } from './pages/System';
import { TargetDetail } from './pages/TargetDetail';
import { Targets } from './pages/Targets';
import { Users } from './pages/Users';

const NAV: { to: string; label: string; perm?: string }[] = [
  { to: '/', label: 'Dashboard' },
  { to: '/targets', label: 'Targets', perm: 'targets:read' },
  { to: '/jobs', label: 'Jobs', perm: 'jobs:read' },
  { to: '/executions', label: 'Executions', perm: 'executions:read' },
  { to: '/schedules', label: 'Schedules', perm: 'jobs:read' },
  { to: '/users', label: 'Users & roles', perm: 'users:read' },
  { to: '/profile', label: 'My profile' },
  { to: '/system', label: 'System health' },
];

function SessionWarning() {
  const { client, notify } = useApi();
  const [idle, setIdle] = useState<IdleState | null>(null);
  const watcher = useRef<ReturnType<typeof client.watchIdle> | null>(null);
  useEffect(() => {
    const w = client.watchIdle(setIdle);
    watcher.current = w;
    return () => w.stop();
  }, [client]);
  useEffect(() => {
    if (idle?.ended) {
      notify('Your session ended after inactivity; log in again.', 'warning');
      client.session.clear();
    }
  }, [idle?.ended, client, notify]);
  if (!idle?.warning || idle.ended) return null;
  const m = Math.floor(idle.remainingSeconds / 60);
  const s = idle.remainingSeconds % 60;
  return (
    <Dialog open aria-labelledby="session-warning-title">
      <DialogTitle id="session-warning-title">Your session is about to end</DialogTitle>
      <DialogContent>
        <DialogContentText>
          You will be logged out for inactivity in {m}:{String(s).padStart(2, '0')}.
        </DialogContentText>
      </DialogContent>
      <DialogActions>
        <Button onClick={() => void client.logout()}>Log out</Button>
        <Button variant="contained" onClick={() => void watcher.current?.extend().catch(() => undefined)}>
          Stay logged in
        </Button>
      </DialogActions>
    </Dialog>
  );
}

const DRAWER = 210;

function Shell() {
  const { session, can, client } = useApi();
  const navigate = useNavigate();
  const location = useLocation();
  const wide = useMediaQuery('(min-width:900px)');
  const [open, setOpen] = useState(false);
  const nav = (
    <nav aria-label="Main">
      <List dense component="div">
        {NAV.filter((n) => !n.perm || can(n.perm)).map((n) => (
          <ListItemButton key={n.to} component={RouterLink} to={n.to} onClick={() => setOpen(false)}
            selected={n.to === '/' ? location.pathname === '/' : location.pathname.startsWith(n.to)}>
            <ListItemText primary={n.label} />
          </ListItemButton>
        ))}
      </List>
    </nav>
  );
  return (
    <Box sx={{ display: 'flex', minHeight: '100vh' }}>
      <AppBar position="fixed" sx={{ zIndex: (t) => t.zIndex.drawer + 1 }}>
        <Toolbar variant="dense">
          {!wide && (
            <IconButton color="inherit" aria-label="Open navigation" onClick={() => setOpen(true)} edge="start">
              <span aria-hidden style={{ fontSize: 22 }}>☰</span>
            </IconButton>
          )}
          <Typography variant="h6" component="div" sx={{ flexGrow: 1 }}>OpsConductor</Typography>
          <Typography variant="body2" sx={{ mr: 2, display: { xs: 'none', sm: 'block' } }} data-testid="whoami">
            {session?.user.username} ({session?.user.roles.join(', ')})
          </Typography>
          <Button color="inherit" onClick={() => void client.logout().then(() => navigate('/'))}>Log out</Button>
        </Toolbar>
      </AppBar>
      {wide ? (
        <Drawer variant="permanent" sx={{ width: DRAWER, '& .MuiDrawer-paper': { width: DRAWER, boxSizing: 'border-box' } }}>
          <Toolbar variant="dense" />
          {nav}
        </Drawer>
      ) : (
        <Drawer open={open} onClose={() => setOpen(false)}>{nav}</Drawer>
      )}
      <Box component="main" sx={{ flexGrow: 1, p: { xs: 1, md: 2 }, minWidth: 0 }}>
        <Toolbar variant="dense" />
        <Routes>
          <Route path="/" element={<Dashboard />} />
          <Route path="/targets" element={<Targets />} />
          <Route path="/targets/:id" element={<TargetDetail />} />
          <Route path="/jobs" element={<Jobs />} />
          <Route path="/jobs/new" element={<JobEditor />} />
          <Route path="/jobs/:id" element={<JobEditor />} />
          <Route path="/executions" element={<Executions />} />
          <Route path="/executions/:id" element={<RunPage />} />
          <Route path="/schedules" element={<Schedules />} />
          <Route path="/schedules/:id" element={<ScheduleDetail />} />
          <Route path="/users" element={<Users />} />
          <Route path="/profile" element={<Profile />} />
          <Route path="/system" element={<System />} />
          <Route path="*" element={<Navigate to="/" />} />
        </Routes>
      </Box>
      <SessionWarning />
    </Box>
  );
}

export function App() {
  const { session } = useApi();
  return session ? <Shell /> : <Login />;
}
