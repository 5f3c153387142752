-- Job body for TimescaleDB's scheduler (registered by `edge historian init` with add_job from config).
CREATE OR REPLACE PROCEDURE fe_prune_ledger_job(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fe_prune_ledger(coalesce(config ->> 'keep', '7 days')::interval);
END
$$;
