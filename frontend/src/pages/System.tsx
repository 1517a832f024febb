import { Card, CardContent, Grid, Link, Typography } from '@mui/material';
import { useEffect, useState } from 'react';
import { config } from '../api';
import { PageHeader } from '../components/common';

export function System() {
  const base = config.graphqlUrl.replace(/\/graphql$/, '');
  const [router, setRouter] = useState<{ ok: boolean; ms: number } | null>(null);
  useEffect(() => {
    const check = async () => {
      const t0 = performance.now();
      try {
        const r = await fetch(`${base}/readiness`);
        setRouter({ ok: r.ok, ms: Math.round(performance.now() - t0) });
      } catch {
        setRouter({ ok: false, ms: Math.round(performance.now() - t0) });
      }
    };
    void check();
    const t = setInterval(check, 10_000);
    return () => clearInterval(t);
  }, [base]);
  return (
    <>
      <PageHeader title="System health" />
      <Grid container spacing={2}>
        <Grid size={{ xs: 12, md: 4 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Router</Typography>
            <Typography data-testid="router-health">{router ? (router.ok ? `ready (${router.ms} ms)` : 'not ready') : 'checking…'}</Typography>
            <Typography variant="body2">{config.graphqlUrl}</Typography>
          </CardContent></Card>
        </Grid>
        <Grid size={{ xs: 12, md: 4 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Tools</Typography>
            <Typography><Link href={config.graphqlUrl} target="_blank" rel="noreferrer">GraphiQL (Laboratory)</Link></Typography>
            <Typography><Link href={config.rayDashboardUrl} target="_blank" rel="noreferrer">Ray dashboard</Link></Typography>
            <Typography variant="body2" color="text.secondary">The Ray dashboard asks for the token `.venv/bin/ray get-auth-token` prints.</Typography>
          </CardContent></Card>
        </Grid>
        <Grid size={{ xs: 12, md: 4 }}>
          <Card variant="outlined"><CardContent>
            <Typography variant="h6" component="h2">Services</Typography>
            <Typography variant="body2">Per-service health appears here once the audit/health service is deployed.</Typography>
          </CardContent></Card>
        </Grid>
      </Grid>
    </>
  );
}
