-- Webhooks: an account's endpoints, the deliveries of its events to them, and the attempts
-- of each delivery.
--
-- Deliveries are enqueued by a statement-level trigger on `events`, in the transaction that
-- appends the events: an event commits with its deliveries or not at all. The trigger is
-- set-based (one INSERT … SELECT over the statement's transition table), so the reaper's
-- bulk appends stay one statement, and it returns at once when no account has an enabled
-- endpoint.

CREATE TABLE webhook_endpoints (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url           text NOT NULL,
    description   text NOT NULL DEFAULT '',
    -- the event types delivered; NULL: every type
    types         text[],
    enabled       boolean NOT NULL DEFAULT true,
    -- why and when it was disabled (410 Gone, a whole retry window of failures, a user)
    disabled_reason text,
    disabled_at   timestamptz,
    -- `whsec_` + base64; the previous one stays valid until `previous_secret_expires_at`
    secret        text NOT NULL,
    previous_secret text,
    previous_secret_expires_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
    updated_at    timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
);

CREATE INDEX webhook_endpoints_account_idx ON webhook_endpoints (account_id, created_at);

CREATE TABLE webhook_deliveries (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- the order of an endpoint's deliveries: each waits for the one before it
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    endpoint_id   uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    account_id    uuid NOT NULL,
    -- the event delivered (its body is read from `events` when sent); NULL for a ping
    event_id      bigint,
    event_type    text NOT NULL,
    -- the body of a ping (which is not in the log)
    payload       jsonb,
    -- `webhook-id`: the same for every attempt and every redelivery of one message
    message_id    text NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'succeeded', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    first_attempt_at timestamptz,
    -- the worker holding it: until the lease expires nobody else sends it; a worker that
    -- dies loses nothing, the next one takes it over (at-least-once)
    lease_token   uuid,
    lease_expires_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
    finished_at   timestamptz,
    CHECK (event_id IS NOT NULL OR payload IS NOT NULL)
);

-- The head of each endpoint's queue, and its delivery log (newest first).
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (endpoint_id, seq DESC);
-- Retention deletes the settled ones by age.
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (finished_at)
    WHERE state <> 'pending';

CREATE TABLE webhook_attempts (
    delivery_id   uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    n             integer NOT NULL,
    attempted_at  timestamptz NOT NULL,
    -- NULL when no answer came (refused address, connection error, timeout)
    status_code   integer,
    latency_ms    integer NOT NULL,
    -- capped (the application cuts them): 1000 characters of error, 4 KiB of body
    error         text CHECK (length(error) <= 1000),
    response_body text CHECK (length(response_body) <= 4096),
    PRIMARY KEY (delivery_id, n)
);

-- Enqueues a delivery of each new event to each enabled endpoint of its account that takes
-- its type, in event order, and wakes the dispatchers.
CREATE FUNCTION webhooks_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    enqueued integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (endpoint_id, account_id, event_id, event_type, message_id)
    SELECT e.id, n.account_id, n.id, n.type,
           'evt_' || replace(n.account_id::text, '-', '') || '_' || n.id
    FROM (SELECT DISTINCT account_id FROM new_events) a
    JOIN webhook_endpoints e ON e.account_id = a.account_id AND e.enabled
    JOIN new_events n ON n.account_id = a.account_id
    WHERE e.types IS NULL OR n.type = ANY (e.types)
    ORDER BY n.account_id, n.id, e.id;
    GET DIAGNOSTICS enqueued = ROW_COUNT;
    IF enqueued > 0 THEN
        PERFORM pg_notify('warren_webhooks', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_webhooks
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhooks_enqueue();
