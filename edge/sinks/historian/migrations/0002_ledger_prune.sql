-- The ingest ledger only has to recognise replays that can still arrive (from the spool, after an outage):
-- entries older than historian.ledger_keep are pruned, so the ledger does not grow without end.

CREATE INDEX IF NOT EXISTS ingest_ledger_committed_brin ON ingest_ledger USING brin (committed_at);

CREATE OR REPLACE FUNCTION fe_prune_ledger(keep interval) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH gone AS (DELETE FROM ingest_ledger WHERE committed_at < now() - keep RETURNING 1)
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION fe_prune_ledger(interval) FROM PUBLIC;
