"""The legacy migration: ``opsconductor migrate-legacy`` imports the monolith's PostgreSQL database
(both job-schema eras) and its ``audit.log`` through each subgraph's own import functions."""
