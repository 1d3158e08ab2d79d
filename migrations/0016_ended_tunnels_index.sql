-- The reaper deletes ended tunnels past their retention, one bounded batch a tick. Without an
-- index it searched all tunnels for them on every tick; a partial index on the moment they
-- ended holds only ended tunnels. Heartbeats never change `stopped_at` or end a tunnel, so
-- they stay HOT updates.
CREATE INDEX tunnels_ended_idx ON tunnels (stopped_at)
    WHERE status IN ('stopped', 'failed');
