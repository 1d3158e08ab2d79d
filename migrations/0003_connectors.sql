-- Connectors (agent processes serving a tunnel) and their connections to edge locations.
--
-- Nothing here stores "pending": whether a connection is pending reconnect, and when it is
-- gone, is computed from timestamps against the database clock at read time:
--   a connection is pending from the earliest of
--     dropped_at                        (its connector's report stopped listing it),
--     connectors.last_seen_at + TTL     (its connector stopped heartbeating),
--     tunnels.stopped_at                (the tunnel reached stopped or failed),
--   and gone once that moment + the reconnect grace has passed. A sweeper deletes gone rows.

CREATE TABLE connectors (
    tunnel_id      uuid NOT NULL REFERENCES tunnels (id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    arch           text CHECK (length(arch) <= 64),
    version        text CHECK (length(version) <= 64),
    config_version bigint CHECK (config_version >= 0),
    features       text[] NOT NULL DEFAULT '{}' CHECK (cardinality(features) <= 32),
    run_at         timestamptz,
    origin_ip      text CHECK (length(origin_ip) <= 45),
    -- SHA-256 of the reported connection list: an unchanged report writes no connection rows.
    report_hash    bytea NOT NULL CHECK (length(report_hash) = 32),
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tunnel_id, id)
);

CREATE TABLE connections (
    tunnel_id    uuid NOT NULL,
    connector_id uuid NOT NULL,
    id           uuid NOT NULL,
    colo_name    text CHECK (length(colo_name) <= 64),
    opened_at    timestamptz,
    -- Set by the first report that no longer lists the connection; cleared if listed again.
    dropped_at   timestamptz,
    PRIMARY KEY (tunnel_id, connector_id, id),
    FOREIGN KEY (tunnel_id, connector_id) REFERENCES connectors (tunnel_id, id) ON DELETE CASCADE
);

-- Dropped connections by drop time, for the sweeper. Deliberately no index on
-- connectors.last_seen_at: every heartbeat bumps it, and without an index on it that update can
-- stay HOT (no index writes); the sweeper's scan of connectors every 30 s is cheap by comparison.
CREATE INDEX connections_dropped_idx ON connections (dropped_at) WHERE dropped_at IS NOT NULL;
