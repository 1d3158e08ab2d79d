-- Processes cache API-token lookups in memory; every removal of a token (revocation, or an
-- account's deletion cascading to it) tells every process sharing the database at commit.
CREATE FUNCTION api_tokens_notify_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warren_token_revoked', encode(OLD.token_hash, 'hex'));
    RETURN OLD;
END;
$$;

CREATE TRIGGER api_tokens_notify_revoked
    AFTER DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_notify_revoked();
