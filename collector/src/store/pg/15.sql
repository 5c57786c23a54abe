-- SQLite migration 15 (see schema.rs): the partner portal's sign-in links and sessions.
CREATE TABLE partner_links ( token_hash BYTEA PRIMARY KEY, key_id BIGINT NOT NULL REFERENCES keys(id), partner_key TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT );
CREATE TABLE partner_sessions ( token_hash BYTEA PRIMARY KEY, key_id BIGINT NOT NULL REFERENCES keys(id), partner_key TEXT COLLATE "C" NOT NULL, csrf TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL );
