-- The reaper logs its own transitions, set-based.
--
-- Expiring 100,000 leases at once ran the PL/pgSQL transition check and a one-row INSERT
-- into tunnel_transitions for every row: about half of each reaper batch's time. The reaper's
-- statement only ever moves live tunnels to `failed` or `stopped` (allowed by construction),
-- and it writes their transition rows itself with one INSERT ... SELECT in the same statement.
-- It says so for its own transaction with `warren.transitions_logged = on`; every other
-- status change is still checked and logged by the trigger.
DROP TRIGGER tunnels_check_transition ON tunnels;

CREATE TRIGGER tunnels_check_transition
    BEFORE UPDATE OF status ON tunnels
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND current_setting('warren.transitions_logged', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION tunnels_check_transition();
