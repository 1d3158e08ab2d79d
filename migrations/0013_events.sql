-- The event log: one ordered log per account of what happened to its tunnels, connectors,
-- devices and tokens, written in the same transaction as the change it records.
--
-- Ids are a per-account sequence without gaps. `append_events` takes the account's
-- `event_sequences` row lock to allocate them and holds it until the transaction commits, so
-- the events of one account become visible in id order: a reader that has seen id N has seen
-- every id below N, and "everything after N" is a complete answer. (A global sequence would
-- hand out ids in one order and commit them in another.) Every transaction takes these locks
-- last, in account order, so they cannot deadlock with each other or with row locks.
CREATE TABLE event_sequences (
    account_id uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    last_id    bigint NOT NULL CHECK (last_id >= 0)
);

-- No foreign key to accounts: events are written in bulk (the reaper's batches) and every
-- account id comes from a row that has one; the sequence row above cascades.
CREATE TABLE events (
    account_id  uuid NOT NULL,
    id          bigint NOT NULL,
    type        text NOT NULL,
    -- what the event is about: a tunnel (also for its connectors), a device, a token
    subject     uuid NOT NULL,
    -- who caused it: {"type": "user" | "token", "id": …} or {"type": "reaper"}
    principal   jsonb NOT NULL,
    -- the object as the API showed it when the event happened
    data        jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
    PRIMARY KEY (account_id, id)
);

CREATE INDEX events_subject_idx ON events (account_id, subject, id);
-- Retention deletes by age. Events are appended in time order, so a block range index finds
-- the old ones at a fraction of a B-tree's cost on every insert (the reaper appends
-- thousands per statement).
CREATE INDEX events_occurred_idx ON events USING brin (occurred_at);

-- Appends events (given as parallel arrays, in order) and returns how many. Ids are allocated
-- per account, accounts locked in id order.
CREATE FUNCTION append_events(accounts uuid[], types text[], subjects uuid[], principals jsonb[], datas jsonb[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    appended integer;
BEGIN
    IF coalesce(cardinality(accounts), 0) = 0 THEN
        RETURN 0;
    END IF;
    WITH input AS (
        SELECT * FROM unnest(accounts, types, subjects, principals, datas)
                      WITH ORDINALITY AS e(account_id, type, subject, principal, data, ord)
    ),
    counts AS (
        SELECT account_id, count(*) AS n FROM input GROUP BY account_id
    ),
    allocated AS (
        INSERT INTO event_sequences AS s (account_id, last_id)
        SELECT account_id, n FROM counts ORDER BY account_id
        ON CONFLICT (account_id) DO UPDATE SET last_id = s.last_id + EXCLUDED.last_id
        RETURNING s.account_id, s.last_id
    )
    INSERT INTO events (account_id, id, type, subject, principal, data)
    SELECT i.account_id,
           a.last_id - c.n + row_number() OVER (PARTITION BY i.account_id ORDER BY i.ord),
           i.type, i.subject, i.principal, i.data
    FROM input i
    JOIN allocated a ON a.account_id = i.account_id
    JOIN counts c ON c.account_id = i.account_id;
    GET DIAGNOSTICS appended = ROW_COUNT;
    RETURN appended;
END;
$$;

-- Committed events wake the readers of every replica: the notification is only the signal
-- to go and look ("{account id}:{highest new id}"), the table is the truth.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warren_events', account_id::text || ':' || max(id))
    FROM new_events GROUP BY account_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- A timestamp as the API writes it: RFC 3339, UTC, milliseconds.
CREATE FUNCTION api_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A tunnel as the API shows it, for the events that statements write set-based (the reaper,
-- the heartbeat batch). The application renders the same shape; a test keeps them equal.
CREATE FUNCTION tunnel_json(t tunnels, base_domain text) RETURNS jsonb
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
            'expiresAt', api_time(t.lease_expires_at)) END,
        'stoppedAt', api_time(t.stopped_at),
        'lastError', t.last_error)
$$;

-- When the tunnel first became active. The heartbeat batch sets it in the statement that
-- moves `creating` to `active`, so the statement can tell which rows it activated (and log
-- `tunnel.active.v1` for exactly those) without reading the row twice.
ALTER TABLE tunnels ADD COLUMN activated_at timestamptz;
