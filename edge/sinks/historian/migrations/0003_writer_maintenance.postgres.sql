-- Plain PostgreSQL: fe_maintain_as_writer() does what the TimescaleDB scheduler would do, in one
-- transaction: daily partitions `partitions_ahead` days ahead, a partition for every day that still has rows
-- in a `*_default` partition (within retention and up to `partitions_ahead` days ahead; the rows move into
-- it), delete rows in the default partitions older than retention, drop expired daily partitions, prune the
-- ledger (`ledger_keep`) and published outbox rows (`outbox_keep`), refresh samples_1m / samples_1h.
-- Only one run at a time (an advisory lock; a second caller gets "skipped"); it waits at most 30 s for a
-- table lock, then fails and leaves everything as it was.

-- Create the daily partition of `tbl` for UTC day `d` unless it exists, moving that day's rows out of the
-- default partition. True when it was created. (Same steps as fe_ensure_partitions in 0001, for one day.)
CREATE OR REPLACE FUNCTION fe_partition_day(tbl text, col text, d date) RETURNS boolean
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    part text := format('%s_p%s', tbl, to_char(d, 'YYYYMMDD'));
    lo timestamptz := (d::timestamp AT TIME ZONE 'UTC');
    hi timestamptz := ((d + 1)::timestamp AT TIME ZONE 'UTC');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, tbl);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', tbl || '_default', col, lo, col, hi, part);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', tbl, part, lo, hi);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION fe_partition_day(text, text, date) FROM PUBLIC;

CREATE OR REPLACE FUNCTION fe_maintain_as_writer() RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET lock_timeout = '30s' AS $$
DECLARE
    ahead integer;
    keep interval;
    ledger interval;
    outbox interval;
    cutoff timestamptz;
    horizon timestamptz;
    t record;
    d date;
    n bigint;
    created integer;
    adopted integer := 0;
    expired bigint := 0;
    dropped integer;
    pruned bigint;
    published bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1717895171) THEN  -- 0x66650003
        RETURN 'skipped: historian maintenance is already running';
    END IF;
    ahead := least(greatest(coalesce(
        (SELECT value FROM historian_meta WHERE key = 'partitions_ahead'), '7')::integer, 1), 366);
    keep := fe_meta_interval('retention', INTERVAL '90 days');
    ledger := fe_meta_interval('ledger_keep', INTERVAL '7 days');
    outbox := fe_meta_interval('outbox_keep', INTERVAL '7 days');
    -- whole UTC days, as fe_drop_expired_partitions counts them
    cutoff := (((now() - keep) AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC';
    horizon := (((now() AT TIME ZONE 'UTC')::date + ahead + 1)::timestamp AT TIME ZONE 'UTC');

    created := fe_ensure_partitions(ahead);
    FOR t IN SELECT * FROM fe_partitioned_tables() LOOP
        EXECUTE format('WITH gone AS (DELETE FROM %I WHERE %I < %L RETURNING 1) SELECT count(*) FROM gone',
                       t.tbl || '_default', t.col, cutoff) INTO n;
        expired := expired + n;
        FOR d IN EXECUTE format('SELECT DISTINCT (%I AT TIME ZONE ''UTC'')::date FROM %I '
                                'WHERE %I >= %L AND %I < %L ORDER BY 1',
                                t.col, t.tbl || '_default', t.col, cutoff, t.col, horizon)
        LOOP
            IF fe_partition_day(t.tbl, t.col, d) THEN
                adopted := adopted + 1;
            END IF;
        END LOOP;
    END LOOP;
    dropped := fe_drop_expired_partitions(keep);
    pruned := fe_prune_ledger(ledger);
    published := fe_prune_outbox(outbox);
    PERFORM fe_refresh_aggregates();
    RETURN format('postgres: partitions created %s ahead and %s for rows in default, dropped %s; '
                  'expired rows deleted from default %s; ledger entries pruned %s; '
                  'published outbox rows pruned %s; aggregates refreshed',
                  created, adopted, dropped, expired, pruned, published);
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
