-- The reaper's skip, shared by every replica.
--
-- A reaper pass that expired every due lease knows the earliest live lease cannot end
-- before some moment (leases only move later), so no pass is needed until then (10 s at
-- most). Each replica used to keep that knowledge to itself and make its own pass over the
-- live set; written here, one pass serves every replica on the database.
ALTER TABLE lease_clock ADD COLUMN passes_skip_until timestamptz;
