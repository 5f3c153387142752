-- Historian core tables (both flavors). `/*fe:partition_by(COL)*/` becomes `PARTITION BY RANGE (COL)` on
-- plain PostgreSQL and stays a comment on TimescaleDB (where the flavor file makes the table a hypertable).

CREATE TABLE IF NOT EXISTS historian_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE IF NOT EXISTS ingest_ledger (
    batch_id     text PRIMARY KEY,
    kind         text NOT NULL,
    rows         integer NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS samples (
    ts         timestamptz NOT NULL,
    recv_ts    timestamptz NOT NULL,
    tag        text NOT NULL,
    value      double precision,
    quality    smallint NOT NULL,
    flags      integer NOT NULL DEFAULT 0,
    source     text NOT NULL,
    asset      text,
    measure    text,
    unit       text,
    work_order text,
    product    text,
    batch      text,
    shift      text
) /*fe:partition_by(ts)*/;

-- One row per window and asset. `features` is a JSON object {feature name: value} (NaN/inf stored as null):
-- feature sets differ per model, and jsonb keeps them readable without a schema change per model.
CREATE TABLE IF NOT EXISTS features (
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    asset         text NOT NULL,
    n_samples     integer NOT NULL,
    good_fraction double precision NOT NULL,
    flags         integer NOT NULL DEFAULT 0,
    features      jsonb NOT NULL DEFAULT '{}'::jsonb
) /*fe:partition_by(window_start)*/;

CREATE TABLE IF NOT EXISTS insights (
    insight_id    text NOT NULL,
    ts            timestamptz NOT NULL,
    asset         text NOT NULL,
    model         text NOT NULL,
    model_version text NOT NULL,
    model_sha256  text NOT NULL,
    score         double precision,
    threshold     double precision NOT NULL,
    severity      text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    top_features  jsonb,
    context       jsonb,
    quality_flags integer NOT NULL DEFAULT 0,
    gated         boolean NOT NULL DEFAULT false,
    revised       boolean NOT NULL DEFAULT false,
    revision      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (insight_id, ts)
) /*fe:partition_by(ts)*/;

CREATE TABLE IF NOT EXISTS events (
    ts      timestamptz NOT NULL,
    kind    text NOT NULL,
    source  text NOT NULL,
    asset   text,
    message text NOT NULL,
    detail  jsonb
) /*fe:partition_by(ts)*/;

CREATE TABLE IF NOT EXISTS dead_letters (
    ts      timestamptz NOT NULL,
    source  text NOT NULL,
    tag     text,
    reason  text NOT NULL,
    detail  text,
    payload bytea
) /*fe:partition_by(ts)*/;

CREATE INDEX IF NOT EXISTS insights_asset_ts ON insights (asset, ts DESC);
CREATE INDEX IF NOT EXISTS features_asset_ts ON features (asset, window_start DESC);
