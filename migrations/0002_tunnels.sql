-- Tunnels and their leases.
--
-- The state machine is enforced here, not only in the application: every status change is
-- checked by a trigger against the allowed transitions, and recorded in tunnel_transitions.
-- The application performs each transition as one conditional UPDATE, so two racing requests
-- cannot both win; the trigger is the backstop that makes an illegal change impossible.

CREATE TABLE tunnels (
    id                uuid PRIMARY KEY,
    account_id        uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    slug              text NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    status            text NOT NULL CHECK (status IN ('creating', 'active', 'stopping', 'stopped', 'failed')),
    requested_port    integer NOT NULL CHECK (requested_port BETWEEN 1 AND 65535),
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz,
    lease_expires_at  timestamptz,
    stopped_at        timestamptz,
    last_error        text CHECK (length(last_error) <= 1024),
    -- A live tunnel always has a lease; a terminal one never has, and always has stopped_at.
    CONSTRAINT tunnels_lease_iff_live
        CHECK ((status IN ('creating', 'active', 'stopping')) = (lease_expires_at IS NOT NULL)),
    CONSTRAINT tunnels_stopped_at_iff_terminal
        CHECK ((status IN ('stopped', 'failed')) = (stopped_at IS NOT NULL))
);

-- Hostnames are global: a slug is unique among the live tunnels of the whole installation,
-- and free again once its tunnel is stopped or failed.
CREATE UNIQUE INDEX tunnels_live_slug_key ON tunnels (slug)
    WHERE status IN ('creating', 'active', 'stopping');

-- Listing an account's tunnels, newest first.
CREATE INDEX tunnels_account_created_idx ON tunnels (account_id, created_at DESC, id DESC);

-- The reaper's scan: live leases by expiry.
CREATE INDEX tunnels_live_lease_idx ON tunnels (lease_expires_at)
    WHERE status IN ('creating', 'active', 'stopping');

-- Every status change, for audit and for proving that no tunnel is transitioned twice.
CREATE TABLE tunnel_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tunnel_id   uuid NOT NULL REFERENCES tunnels (id) ON DELETE CASCADE,
    from_status text NOT NULL,
    to_status   text NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX tunnel_transitions_tunnel_idx ON tunnel_transitions (tunnel_id, id);

CREATE FUNCTION tunnels_check_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT ((OLD.status, NEW.status) IN (
            ('creating', 'active'),
            ('creating', 'stopping'),
            ('active', 'stopping'),
            ('stopping', 'stopped'),
            ('creating', 'failed'),
            ('active', 'failed'),
            ('stopping', 'failed')
        )) THEN
            RAISE EXCEPTION 'invalid tunnel transition from % to %', OLD.status, NEW.status
                USING ERRCODE = 'check_violation', CONSTRAINT = 'tunnels_transition_allowed';
        END IF;
        INSERT INTO tunnel_transitions (tunnel_id, from_status, to_status)
            VALUES (NEW.id, OLD.status, NEW.status);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER tunnels_check_transition
    BEFORE UPDATE OF status ON tunnels
    FOR EACH ROW EXECUTE FUNCTION tunnels_check_transition();
