-- Device fleet status: the snapshots agents report, and an hourly rollup kept at ingest.
--
-- The filter and sort dimensions (device, time, colo, mode, platform, status, version) are
-- typed columns so the list queries can filter and order on indexes; every other seed field
-- is kept, as validated, in `details` (jsonb, the seed's camelCase keys).

CREATE TABLE device_snapshots (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id  uuid NOT NULL,
    ts         timestamptz NOT NULL,
    colo       text NOT NULL,
    mode       text NOT NULL,
    platform   text NOT NULL,
    status     text NOT NULL,
    version    text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}'
);

-- One snapshot per device and instant: a retried batch is stored once (ON CONFLICT DO
-- NOTHING), and the same index serves the live status and last_seen (latest per device).
CREATE UNIQUE INDEX device_snapshots_device_ts_key
    ON device_snapshots (account_id, device_id, ts DESC);

-- A page of the raw list in time order (the default sort), newest first. The dimensions are
-- included so that counting the matches of a filtered range (resultInfo.totalCount) is an
-- index-only scan, never a visit of every row.
CREATE INDEX device_snapshots_account_ts_idx
    ON device_snapshots (account_id, ts DESC, device_id, id)
    INCLUDE (colo, mode, platform, status, version);

-- Retention deletes by age across all accounts.
CREATE INDEX device_snapshots_ts_idx ON device_snapshots (ts);

-- One row per device and hour, maintained at ingest: the hour's last state (dimensions and
-- details of its latest snapshot) plus, for the numeric metrics averaged over the hour, a
-- running sum and count per metric (positions fixed by `fleet::hourly::AVERAGED`). Keeping
-- it at ingest makes a page of the hourly source as cheap as a page of raw snapshots,
-- instead of aggregating up to 7 days of snapshots on every request.
CREATE TABLE device_hourly (
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id  uuid NOT NULL,
    hour       timestamptz NOT NULL CHECK (date_trunc('hour', hour, 'UTC') = hour),
    last_ts    timestamptz NOT NULL,
    colo       text NOT NULL,
    mode       text NOT NULL,
    platform   text NOT NULL,
    status     text NOT NULL,
    version    text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    sums       float8[] NOT NULL,
    counts     integer[] NOT NULL CHECK (cardinality(counts) = cardinality(sums)),
    PRIMARY KEY (account_id, device_id, hour)
);

CREATE INDEX device_hourly_account_hour_idx
    ON device_hourly (account_id, hour DESC, device_id);

CREATE INDEX device_hourly_hour_idx ON device_hourly (hour);
