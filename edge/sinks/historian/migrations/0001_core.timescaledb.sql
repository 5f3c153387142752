-- TimescaleDB: hypertables, compression settings and the continuous aggregates. Chunk intervals and the
-- compression / retention / refresh policies come from config and are (re)applied by `edge historian init`.

SELECT create_hypertable('samples', by_range('ts', INTERVAL '1 day'), if_not_exists => true);
SELECT create_hypertable('features', by_range('window_start', INTERVAL '1 day'), if_not_exists => true);
SELECT create_hypertable('insights', by_range('ts', INTERVAL '7 days'), if_not_exists => true);
SELECT create_hypertable('events', by_range('ts', INTERVAL '7 days'), if_not_exists => true);
SELECT create_hypertable('dead_letters', by_range('ts', INTERVAL '7 days'), if_not_exists => true);

CREATE INDEX IF NOT EXISTS samples_tag_ts ON samples (tag, ts DESC);

-- Column privileges must be granted before compression is enabled: TimescaleDB 2.23 propagates a column
-- GRANT to the compressed hypertable, which has no such columns, and fails. Granted here (init creates the
-- roles before migrations), and apply_grants() skips the column grants that are already held.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_writer') THEN
        GRANT UPDATE (work_order, product, batch, shift) ON samples TO edge_writer;
        GRANT UPDATE (context, revised, revision) ON insights TO edge_writer;
    END IF;
END
$$;

ALTER TABLE samples SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'tag',
    timescaledb.compress_orderby = 'ts DESC'
);
ALTER TABLE features SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'asset',
    timescaledb.compress_orderby = 'window_start DESC'
);

CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1m WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 minute', ts) AS bucket,
       tag,
       min(value) AS min_value,
       max(value) AS max_value,
       avg(value) AS avg_value,
       count(value) AS n
FROM samples
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1h WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
       tag,
       min(value) AS min_value,
       max(value) AS max_value,
       avg(value) AS avg_value,
       count(value) AS n
FROM samples
GROUP BY 1, 2
WITH NO DATA;
