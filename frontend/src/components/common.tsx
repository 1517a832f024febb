import { Alert, Box, Chip, LinearProgress, Typography } from '@mui/material';
import type { ReactNode } from 'react';

export const HEALTH_COLOURS: Record<string, 'success' | 'warning' | 'error' | 'default'> = {
  HEALTHY: 'success',
  WARNING: 'warning',
  CRITICAL: 'error',
  UNKNOWN: 'default',
};

export const STATUS_COLOURS: Record<string, 'success' | 'warning' | 'error' | 'default' | 'info' | 'primary'> = {
  SUCCEEDED: 'success',
  FAILED: 'error',
  TIMED_OUT: 'error',
  CANCELLED: 'warning',
  RUNNING: 'info',
  QUEUED: 'default',
  PENDING: 'default',
  FIRED: 'success',
  MISSED: 'error',
};

/** Colours that keep 4.5:1 contrast with white text (status grid cells). */
export const STATUS_BG: Record<string, string> = {
  SUCCEEDED: '#1b5e20',
  FAILED: '#b71c1c',
  CANCELLED: '#8a4b00',
  RUNNING: '#0d47a1',
  PENDING: '#555555',
  QUEUED: '#555555',
};

export function StatusChip({ status }: { status: string }) {
  return <Chip size="small" label={status} color={STATUS_COLOURS[status] ?? 'default'} variant="filled" />;
}

export function HealthChip({ health }: { health: string }) {
  return <Chip size="small" label={health} color={HEALTH_COLOURS[health] ?? 'default'} data-health={health} />;
}

export function PageHeader({ title, actions }: { title: string; actions?: ReactNode }) {
  return (
    <Box sx={{ display: 'flex', alignItems: 'center', gap: 1, mb: 2, flexWrap: 'wrap' }}>
      <Typography variant="h5" component="h1" sx={{ flexGrow: 1 }}>{title}</Typography>
      {actions}
    </Box>
  );
}

export function Loading({ loading, error }: { loading: boolean; error?: string }) {
  if (error) return <Alert severity="error" sx={{ mb: 1 }}>{error}</Alert>;
  return loading ? <LinearProgress sx={{ mb: 1 }} aria-label="Loading" /> : null;
}
