-- Transitions at the reaper's scale (100,000 leases expiring together).
--
-- * The transition check now runs only for rows whose status really changes (a WHEN
--   condition, evaluated without calling the function): heartbeats, which set `status` to
--   itself for live tunnels, no longer pay a PL/pgSQL call per row.
-- * tunnel_transitions loses its foreign key: a per-row referential check doubled the cost
--   of every reaped lease. History still goes with its tunnel, through a statement-level
--   delete trigger.

DROP TRIGGER tunnels_check_transition ON tunnels;

CREATE TRIGGER tunnels_check_transition
    BEFORE UPDATE OF status ON tunnels
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION tunnels_check_transition();

ALTER TABLE tunnel_transitions DROP CONSTRAINT tunnel_transitions_tunnel_id_fkey;

CREATE FUNCTION tunnels_forget_transitions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tunnel_transitions WHERE tunnel_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tunnels_forget_transitions
    AFTER DELETE ON tunnels
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tunnels_forget_transitions();
