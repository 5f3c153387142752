-- contextualize: the questions MES users ask, as views over samples, insights and mes_context.
--
--   mes_batch_samples          samples that carry a batch (filter: WHERE batch = 'B-7')
--   mes_insights_context       insights with their MES context as columns (from the context JSON)
--   mes_batch_insights         insights that carry a batch (filter: WHERE batch = 'B-7')
--   mes_work_order_insights    per work order: insight counts, scores, revised count, time span, assets
--   mes_product_measure_stats  per product, measure and unit: n, mean, stddev, min, p05, median, p95, max
--   mes_product_stats(measure, from, to)   the same statistics for one measure over a time range
--   mes_context_intervals      mes_context with the interval as a tstzrange (for && and @> queries)
--
-- Filters on the grouping columns (work_order, product, measure) are pushed into the views by the planner.

CREATE OR REPLACE VIEW mes_batch_samples AS
SELECT s.batch, s.work_order, s.product, s.shift, s.asset, s.measure, s.unit, s.tag, s.ts, s.value, s.quality
FROM samples s
WHERE s.batch IS NOT NULL;

CREATE OR REPLACE VIEW mes_insights_context AS
SELECT i.insight_id, i.ts, i.asset, i.model, i.model_version, i.score, i.threshold, i.severity,
       i.window_start, i.window_end,
       i.context::jsonb ->> 'work_order' AS work_order,
       i.context::jsonb ->> 'product'    AS product,
       i.context::jsonb ->> 'batch'      AS batch,
       i.context::jsonb ->> 'shift'      AS shift,
       i.revised, i.revision
FROM insights i;

CREATE OR REPLACE VIEW mes_batch_insights AS
SELECT * FROM mes_insights_context WHERE batch IS NOT NULL;

CREATE OR REPLACE VIEW mes_work_order_insights AS
SELECT work_order,
       min(product)                                   AS product,
       count(*)                                       AS insights,
       count(*) FILTER (WHERE score >= threshold)     AS over_threshold,
       max(score)                                     AS max_score,
       avg(score)                                     AS mean_score,
       count(*) FILTER (WHERE revised)                AS revised,
       min(window_start)                              AS first_window,
       max(window_end)                                AS last_window,
       array_agg(DISTINCT asset::text)                AS assets,
       array_agg(DISTINCT batch) FILTER (WHERE batch IS NOT NULL) AS batches
FROM mes_insights_context
WHERE work_order IS NOT NULL
GROUP BY work_order;

CREATE OR REPLACE VIEW mes_product_measure_stats AS
SELECT product, measure, unit,
       count(value)                                           AS n,
       avg(value)                                             AS mean,
       stddev_samp(value)                                     AS stddev,
       min(value)                                             AS min,
       percentile_cont(0.05) WITHIN GROUP (ORDER BY value)    AS p05,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY value)     AS median,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY value)    AS p95,
       max(value)                                             AS max,
       count(DISTINCT batch)                                  AS batches,
       count(DISTINCT work_order)                             AS work_orders
FROM samples
WHERE product IS NOT NULL AND value IS NOT NULL
GROUP BY product, measure, unit;

CREATE OR REPLACE FUNCTION mes_product_stats(p_measure text, p_from timestamptz DEFAULT '-infinity',
                                             p_to timestamptz DEFAULT 'infinity')
RETURNS TABLE (product text, unit text, n bigint, mean double precision, stddev double precision,
               min double precision, p05 double precision, median double precision, p95 double precision,
               max double precision, batches bigint, work_orders bigint)
LANGUAGE sql STABLE AS $$
    SELECT s.product::text, s.unit::text, count(s.value), avg(s.value), stddev_samp(s.value), min(s.value),
           percentile_cont(0.05) WITHIN GROUP (ORDER BY s.value),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY s.value),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY s.value),
           max(s.value), count(DISTINCT s.batch), count(DISTINCT s.work_order)
    FROM samples s
    WHERE s.measure::text = p_measure AND s.product IS NOT NULL AND s.value IS NOT NULL
      AND s.ts >= p_from AND s.ts < p_to
    GROUP BY s.product, s.unit
    ORDER BY s.product::text, s.unit::text
$$;

CREATE OR REPLACE VIEW mes_context_intervals AS
SELECT scope, key, value, tstzrange(valid_from, valid_to, '[)') AS valid, valid_from, valid_to,
       recorded_at, source_event
FROM mes_context;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_reader') THEN
        GRANT SELECT ON mes_batch_samples, mes_insights_context, mes_batch_insights, mes_work_order_insights,
            mes_product_measure_stats, mes_context_intervals TO edge_reader;
        GRANT EXECUTE ON FUNCTION mes_product_stats(text, timestamptz, timestamptz) TO edge_reader;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_writer') THEN
        -- relabelling stored rows when MES context changes: only the context columns and revision marks
        -- (skipped when already held: on TimescaleDB a column GRANT fails once compression is enabled;
        -- historian 0001 grants these before enabling it)
        IF NOT has_column_privilege('edge_writer', 'samples', 'work_order', 'UPDATE') THEN
            GRANT UPDATE (work_order, product, batch, shift) ON samples TO edge_writer;
        END IF;
        IF NOT has_column_privilege('edge_writer', 'insights', 'revision', 'UPDATE') THEN
            GRANT UPDATE (context, revised, revision) ON insights TO edge_writer;
        END IF;
    END IF;
END
$$;
