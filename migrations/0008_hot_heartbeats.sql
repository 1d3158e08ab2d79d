-- Heartbeats as HOT updates.
--
-- A heartbeat rewrites last_heartbeat_at and lease_expires_at. While lease_expires_at was
-- indexed (for the reaper), every heartbeat had to add an entry to every index of the table;
-- without it, and with free room on each page, PostgreSQL renews the row in place (a HOT
-- update) and touches no index. The reaper now finds live tunnels through a partial index on
-- a column heartbeats never change, and filters their leases: a scan of the live set every
-- tick, which costs far less than four index writes per heartbeat.
DROP INDEX tunnels_live_lease_idx;

CREATE INDEX tunnels_live_idx ON tunnels (id)
    WHERE status IN ('creating', 'active', 'stopping');

ALTER TABLE tunnels SET (fillfactor = 80);
