-- One rule for "this lease has run out".
--
-- A live tunnel's lease holds while `lease_expires_at > lease_cutoff()`. The cutoff is the
-- database clock, except while leases are on hold (the outage grace, see 0010_outage_grace):
-- then it is -infinity and no lease counts as run out. Every statement that renews, expires
-- or checks a lease compares with this function, written `(SELECT lease_cutoff())` so that
-- it is computed once per statement (an InitPlan), not once per row.
CREATE FUNCTION lease_cutoff() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN leases_on_hold() THEN '-infinity'::timestamptz ELSE now() END
$$;
