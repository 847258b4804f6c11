-- A change to what the servers keep in memory for the grant check (tokens, users, grants, the catalog) is
-- announced on channel `cone_cache`, so that every replica stops answering from what it read before. One
-- notification per statement; PostgreSQL folds identical ones within a transaction and sends them at commit.
CREATE FUNCTION cone_cache_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('cone_cache', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER access_tokens_cache AFTER INSERT OR UPDATE OR DELETE ON access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
CREATE TRIGGER users_cache AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
CREATE TRIGGER grants_cache AFTER INSERT OR UPDATE OR DELETE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
CREATE TRIGGER apps_cache AFTER INSERT OR UPDATE OR DELETE ON apps
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
CREATE TRIGGER resources_cache AFTER INSERT OR UPDATE OR DELETE ON resources
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
CREATE TRIGGER entitlements_cache AFTER INSERT OR UPDATE OR DELETE ON entitlements
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
