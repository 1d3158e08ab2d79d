-- Device fleet status: one index per sort dimension, so that a page sorted by `colo`, `mode`,
-- `platform`, `status` or `version` is read in order off an index instead of sorting the whole
-- time range (a week of a million snapshots took 1.7 s to sort for a page of 50).
--
-- The list orders by (dimension, time DESC, device_id) — see `fleet::store` — and a device has
-- one snapshot per instant, so that order is total. For raw snapshots the index stops at the
-- time: two snapshots with the same dimension value and the same millisecond are rare, and
-- PostgreSQL puts those few in device order with an incremental sort, for half the index size
-- (each of these indexes costs about 35 MB per million snapshots, and an insert into each).
-- Hourly rows share their hour with every other device, so there the device is part of the key.
--
-- Built without CONCURRENTLY (migrations run in a transaction): writes to these two tables
-- wait while the indexes are built, about 2 s per index and million rows.

CREATE INDEX device_snapshots_colo_idx ON device_snapshots (account_id, colo, ts DESC);
CREATE INDEX device_snapshots_mode_idx ON device_snapshots (account_id, mode, ts DESC);
CREATE INDEX device_snapshots_platform_idx ON device_snapshots (account_id, platform, ts DESC);
CREATE INDEX device_snapshots_status_idx ON device_snapshots (account_id, status, ts DESC);
CREATE INDEX device_snapshots_version_idx ON device_snapshots (account_id, version, ts DESC);

CREATE INDEX device_hourly_colo_idx ON device_hourly (account_id, colo, hour DESC, device_id);
CREATE INDEX device_hourly_mode_idx ON device_hourly (account_id, mode, hour DESC, device_id);
CREATE INDEX device_hourly_platform_idx ON device_hourly (account_id, platform, hour DESC, device_id);
CREATE INDEX device_hourly_status_idx ON device_hourly (account_id, status, hour DESC, device_id);
CREATE INDEX device_hourly_version_idx ON device_hourly (account_id, version, hour DESC, device_id);
