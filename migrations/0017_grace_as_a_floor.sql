-- The outage grace as a floor under every lease, instead of a rewrite of every live row.
--
-- 0010 gave the grace by updating each live tunnel's `lease_expires_at` to at least one TTL
-- from the recovery: at a million live tunnels that one UPDATE took 13 s, held every row
-- lock meanwhile (heartbeats stalled behind it) and wrote a million row versions. Now the
-- reaper's tick writes one row: `grace_until`, the moment until which no lease ends. A live
-- lease ends at GREATEST(lease_expires_at, grace_until), which is what the old UPDATE stored.
ALTER TABLE lease_clock ADD COLUMN grace_until timestamptz;

-- No lease ends before this (-infinity when no grace was given).
CREATE FUNCTION lease_floor() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(max(grace_until), '-infinity'::timestamptz) FROM lease_clock
$$;

-- When a live lease ends: its own end or `grace_end` (what `lease_floor()` says), whichever
-- is later; NULL without a lease. A plain expression the planner inlines, so a statement
-- reads the floor once, as `lease_end(lease_expires_at, (SELECT lease_floor()))`.
CREATE FUNCTION lease_end(expires_at timestamptz, grace_end timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN expires_at IS NOT NULL THEN GREATEST(expires_at, grace_end) END
$$;

-- While leases are on hold (the reaper has not yet given its grace) or the grace lasts,
-- no lease counts as run out; afterwards a lease has run out when `lease_expires_at` is past
-- (a lease that ended before the grace did, ended with it).
CREATE OR REPLACE FUNCTION lease_cutoff() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN leases_on_hold() OR lease_floor() > now()
                THEN '-infinity'::timestamptz ELSE now() END
$$;

-- Events show a live tunnel's lease as it holds: at least until the grace ends.
CREATE OR REPLACE FUNCTION tunnel_json(t tunnels, base_domain text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'id', t.id,
        'hostname', t.slug || '.' || base_domain,
        'slug', t.slug,
        'status', t.status,
        'requestedPort', t.requested_port,
        'createdAt', api_time(t.created_at),
        'lease', CASE WHEN t.lease_expires_at IS NULL THEN NULL ELSE jsonb_build_object(
            'lastHeartbeatAt', api_time(t.last_heartbeat_at),
            'expiresAt', api_time(lease_end(t.lease_expires_at, lease_floor()))) END,
        'stoppedAt', api_time(t.stopped_at),
        'lastError', t.last_error)
$$;
