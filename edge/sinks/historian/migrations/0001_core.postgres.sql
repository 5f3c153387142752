-- Plain PostgreSQL: daily range partitions (plus a default partition so no write ever fails for want of one),
-- BRIN indexes on time, materialized views in place of the continuous aggregates, and maintenance functions.
-- The functions are SECURITY DEFINER (owned by the superuser that ran init) so edge_writer may call them
-- without holding DDL rights itself.

CREATE TABLE IF NOT EXISTS samples_default PARTITION OF samples DEFAULT;
CREATE TABLE IF NOT EXISTS features_default PARTITION OF features DEFAULT;
CREATE TABLE IF NOT EXISTS insights_default PARTITION OF insights DEFAULT;
CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;
CREATE TABLE IF NOT EXISTS dead_letters_default PARTITION OF dead_letters DEFAULT;

CREATE INDEX IF NOT EXISTS samples_ts_brin ON samples USING brin (ts) WITH (pages_per_range = 32);
CREATE INDEX IF NOT EXISTS features_ts_brin ON features USING brin (window_start);
CREATE INDEX IF NOT EXISTS insights_ts_brin ON insights USING brin (ts);
CREATE INDEX IF NOT EXISTS events_ts_brin ON events USING brin (ts);
CREATE INDEX IF NOT EXISTS dead_letters_ts_brin ON dead_letters USING brin (ts);

-- The time-partitioned tables and their time column.
CREATE OR REPLACE FUNCTION fe_partitioned_tables(OUT tbl text, OUT col text) RETURNS SETOF record
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('samples', 'ts'), ('features', 'window_start'), ('insights', 'ts'), ('events', 'ts'),
           ('dead_letters', 'ts')
$$;

-- Daily partitions from yesterday to `days_ahead` days ahead (UTC days). Rows already in the default
-- partition for such a day are moved into the new partition. Returns the number of partitions created.
CREATE OR REPLACE FUNCTION fe_ensure_partitions(days_ahead integer DEFAULT 7) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    t record;
    d date;
    lo timestamptz;
    hi timestamptz;
    part text;
    created integer := 0;
BEGIN
    FOR t IN SELECT * FROM fe_partitioned_tables() LOOP
        FOR d IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - 1,
                                        (now() AT TIME ZONE 'UTC')::date + days_ahead, interval '1 day')::date
        LOOP
            part := format('%s_p%s', t.tbl, to_char(d, 'YYYYMMDD'));
            CONTINUE WHEN to_regclass(part) IS NOT NULL;
            lo := (d::timestamp AT TIME ZONE 'UTC');
            hi := ((d + 1)::timestamp AT TIME ZONE 'UTC');
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, t.tbl);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) '
                           'INSERT INTO %I SELECT * FROM moved',
                           t.tbl || '_default', t.col, lo, t.col, hi, part);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           t.tbl, part, lo, hi);
            created := created + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END
$$;

-- Drop daily partitions whose whole day is older than `retention`. Returns the number dropped.
CREATE OR REPLACE FUNCTION fe_drop_expired_partitions(retention interval) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    p record;
    dropped integer := 0;
BEGIN
    FOR p IN
        SELECT c.relname AS part
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class parent ON parent.oid = i.inhparent
        WHERE parent.relname IN (SELECT tbl FROM fe_partitioned_tables())
          AND c.relname ~ '_p[0-9]{8}$'
          AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' < now() - retention
    LOOP
        EXECUTE format('DROP TABLE %I', p.part);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;

CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1m AS
SELECT date_bin(INTERVAL '1 minute', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       tag,
       min(value) AS min_value,
       max(value) AS max_value,
       avg(value) AS avg_value,
       count(value) AS n
FROM samples
GROUP BY 1, 2;
CREATE UNIQUE INDEX IF NOT EXISTS samples_1m_key ON samples_1m (tag, bucket);

CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1h AS
SELECT date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       tag,
       min(value) AS min_value,
       max(value) AS max_value,
       avg(value) AS avg_value,
       count(value) AS n
FROM samples
GROUP BY 1, 2;
CREATE UNIQUE INDEX IF NOT EXISTS samples_1h_key ON samples_1h (tag, bucket);

CREATE OR REPLACE FUNCTION fe_refresh_aggregates() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY samples_1m;
    REFRESH MATERIALIZED VIEW CONCURRENTLY samples_1h;
END
$$;

-- Everything periodic in one call: partitions ahead, retention, aggregates. Settings from historian_meta
-- (written by `edge historian init` from config).
CREATE OR REPLACE FUNCTION fe_maintain() RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    ahead integer := coalesce((SELECT value FROM historian_meta WHERE key = 'partitions_ahead'), '7')::integer;
    keep interval := coalesce((SELECT value FROM historian_meta WHERE key = 'retention'), '90 days')::interval;
    created integer;
    dropped integer;
BEGIN
    created := fe_ensure_partitions(ahead);
    dropped := fe_drop_expired_partitions(keep);
    PERFORM fe_refresh_aggregates();
    RETURN format('partitions created %s, dropped %s, aggregates refreshed', created, dropped);
END
$$;

REVOKE ALL ON FUNCTION fe_ensure_partitions(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION fe_drop_expired_partitions(interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION fe_refresh_aggregates() FROM PUBLIC;
REVOKE ALL ON FUNCTION fe_maintain() FROM PUBLIC;

SELECT fe_ensure_partitions(7);
