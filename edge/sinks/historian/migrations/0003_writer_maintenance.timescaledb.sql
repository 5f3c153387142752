-- TimescaleDB: chunks are created on insert, and compression, retention and the continuous aggregate
-- refreshes are policies the native job scheduler owns (configured by init): fe_maintain_as_writer() leaves
-- them alone (a continuous aggregate refresh cannot run inside a function anyway). It does what no native
-- job does, and what is safe to do twice:
--   * prune published outbox rows older than `outbox_keep` (no job owns the outbox);
--   * prune the ledger (`ledger_keep`): the same idempotent DELETE as the hourly fe_prune_ledger_job, so
--     running it besides the job changes nothing, and it also happens where no scheduler runs (PGlite);
--   * report the native jobs: how many, how many failed their last run, how many never ran.
-- Where no scheduler runs (PGlite) the policies need `edge historian maintain` (CALL run_job) as a superuser.

CREATE OR REPLACE FUNCTION fe_maintain_as_writer() RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET lock_timeout = '30s' AS $$
DECLARE
    ledger interval;
    outbox interval;
    pruned bigint;
    published bigint;
    jobs bigint;
    failed bigint;
    never bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1717895171) THEN  -- 0x66650003
        RETURN 'skipped: historian maintenance is already running';
    END IF;
    ledger := fe_meta_interval('ledger_keep', INTERVAL '7 days');
    outbox := fe_meta_interval('outbox_keep', INTERVAL '7 days');
    pruned := fe_prune_ledger(ledger);
    published := fe_prune_outbox(outbox);
    SELECT count(*),
           count(*) FILTER (WHERE s.last_run_status = 'Failed'),
           count(*) FILTER (WHERE s.last_run_started_at IS NULL OR s.total_runs = 0)
      INTO jobs, failed, never
      FROM timescaledb_information.jobs j
      LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
     WHERE j.job_id >= 1000;
    RETURN format('timescaledb: ledger entries pruned %s; published outbox rows pruned %s; '
                  'native jobs %s (failed last run %s, never run %s) own chunks, compression, retention '
                  'and aggregates', pruned, published, jobs, failed, never);
END
$$;
REVOKE ALL ON FUNCTION fe_maintain_as_writer() FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_writer') THEN
        GRANT EXECUTE ON FUNCTION fe_maintain_as_writer() TO edge_writer;
    END IF;
END
$$;
