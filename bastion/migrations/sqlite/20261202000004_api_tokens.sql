-- Bearer tokens of the HTTP API. Only a SHA-256 of each token is kept: the token itself is
-- shown once, when it is created, and cannot be read back from here.

CREATE TABLE api_tokens (
    -- Public id (`tok-...`), what `token list` shows and `token revoke` takes.
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    -- The bastion user every call with this token acts as.
    user_name   TEXT    NOT NULL,
    -- Lower-case hex SHA-256 of the whole token.
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL,
    revoked_at  BIGINT,
    revoked_by  TEXT,
    last_used_at BIGINT
);

CREATE INDEX api_tokens_by_user ON api_tokens (user_name);

-- Slack interactions already acted on, by the hash of their signature: a replayed delivery
-- (same timestamp and body) is refused. Rows older than the 5-minute window can go.
CREATE TABLE slack_replays (
    signature_hash TEXT   PRIMARY KEY,
    seen_at        BIGINT NOT NULL
);
