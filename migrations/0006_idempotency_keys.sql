-- `Idempotency-Key` on tunnel creation: a retry with the same key and body returns the
-- tunnel the first request created. Keys are honoured for 24 hours.
CREATE TABLE idempotency_keys (
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,
    tunnel_id    uuid REFERENCES tunnels (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
