-- Maintenance the appliance runs itself, as edge_writer: `fe_maintain_as_writer()` (no arguments, settings
-- from historian_meta, which only init writes), defined per flavor in 0003_writer_maintenance.postgres.sql and
-- 0003_writer_maintenance.timescaledb.sql. It is SECURITY DEFINER, owned by the superuser that ran init,
-- with a fixed search_path; EXECUTE goes to edge_writer only. Run it with `HistorianMaintenance`
-- (edge/historian/maintenance.py) or `edge historian maintain`.
--
-- The helpers below are not granted to anyone: they run inside fe_maintain_as_writer() as its owner.

-- Published outbox rows (delivery, migration 0040) whose `published_at` is older than `keep`. Rows not yet
-- published are never touched. On a new database 0040 runs after this migration: hence the dynamic SQL and
-- the check that the table exists. Returns the number of rows deleted.
CREATE OR REPLACE FUNCTION fe_prune_outbox(keep interval) RETURNS bigint
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF keep IS NULL OR keep <= INTERVAL '0' THEN
        RAISE EXCEPTION 'fe_prune_outbox: keep must be a positive interval, not %', keep;
    END IF;
    IF to_regclass('public.insights_outbox') IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE 'WITH gone AS (DELETE FROM insights_outbox WHERE published_at IS NOT NULL '
            'AND published_at < now() - $1 RETURNING 1) SELECT count(*) FROM gone'
        INTO n USING keep;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION fe_prune_outbox(interval) FROM PUBLIC;

-- A setting from historian_meta as an interval, `fallback` when missing; a non-positive value is an error
-- (a zero ledger_keep would forget every batch and let replays be stored twice).
CREATE OR REPLACE FUNCTION fe_meta_interval(setting text, fallback interval) RETURNS interval
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
DECLARE
    v interval := coalesce((SELECT value FROM historian_meta WHERE key = setting)::interval, fallback);
BEGIN
    IF v <= INTERVAL '0' THEN
        RAISE EXCEPTION 'historian_meta %: must be a positive interval, not %', setting, v;
    END IF;
    RETURN v;
END
$$;
REVOKE ALL ON FUNCTION fe_meta_interval(text, interval) FROM PUBLIC;
