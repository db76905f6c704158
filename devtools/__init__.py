"""Development tools kept out of the service package: launcher, embedded PostgreSQL, harness."""
