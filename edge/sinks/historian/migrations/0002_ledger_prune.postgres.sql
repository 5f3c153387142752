-- fe_maintain() also prunes the ledger (historian_meta 'ledger_keep', written by init from config).
CREATE OR REPLACE FUNCTION fe_maintain() RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    ahead integer := coalesce((SELECT value FROM historian_meta WHERE key = 'partitions_ahead'), '7')::integer;
    keep interval := coalesce((SELECT value FROM historian_meta WHERE key = 'retention'), '90 days')::interval;
    ledger interval := coalesce((SELECT value FROM historian_meta WHERE key = 'ledger_keep'), '7 days')::interval;
    created integer;
    dropped integer;
    pruned bigint;
BEGIN
    created := fe_ensure_partitions(ahead);
    dropped := fe_drop_expired_partitions(keep);
    pruned := fe_prune_ledger(ledger);
    PERFORM fe_refresh_aggregates();
    RETURN format('partitions created %s, dropped %s, ledger entries pruned %s, aggregates refreshed',
                  created, dropped, pruned);
END
$$;
REVOKE ALL ON FUNCTION fe_maintain() FROM PUBLIC;
