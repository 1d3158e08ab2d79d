-- Outage grace.
--
-- While Warren or its database is unreachable, agents cannot heartbeat, and without care the
-- first reaper tick after recovery would expire every lease that ran out meanwhile: healthy
-- tunnels failed for an outage that was not theirs. The reaper therefore keeps a clock here:
-- it stamps `reaper_ran_at` on every tick and batch. A tick that finds the previous stamp
-- older than `stall_after` knows the reaper could not run for that long, and in the same
-- transaction extends every live lease to at least one full TTL from now.
--
-- Between the recovery and that tick (requests can arrive first), `leases_on_hold()` is
-- true: nothing expires a lease, and a heartbeat may renew a lease that ran out during the
-- outage. Every lease predicate in the application goes through it.
CREATE TABLE lease_clock (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- the last moment any replica's reaper ran (NULL: never, e.g. a fresh database)
    reaper_ran_at timestamptz,
    -- a reaper silent for longer than this was down (written by the reaper from its config)
    stall_after   interval NOT NULL DEFAULT interval '20 seconds',
    -- the last grace given, for operators
    last_grace_at timestamptz,
    last_outage   interval
);

INSERT INTO lease_clock DEFAULT VALUES;

CREATE FUNCTION leases_on_hold() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(bool_or(reaper_ran_at < now() - stall_after), false) FROM lease_clock
$$;
