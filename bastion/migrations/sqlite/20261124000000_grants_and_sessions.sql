-- Grants and the recording index (SQLite). All times are epoch milliseconds taken from the
-- database clock; a grant's window is [starts_at, expires_at).

CREATE TABLE grants (
    -- AUTOINCREMENT: an id that appeared in the audit log is never reused.
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name          TEXT    NOT NULL,
    target             TEXT    NOT NULL,
    -- JSON array of login names, the first being the default.
    logins             TEXT    NOT NULL,
    starts_at          BIGINT  NOT NULL,
    expires_at         BIGINT  NOT NULL,
    approved_by        TEXT    NOT NULL,
    reason             TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    revoked_at         BIGINT,
    revoked_by         TEXT,
    -- When the "grant expired" audit event was claimed, so it is reported once.
    expiry_reported_at BIGINT,
    CHECK (starts_at < expires_at)
);

CREATE INDEX grants_by_user_target ON grants (user_name, target);
CREATE INDEX grants_unreported_expiry ON grants (expires_at)
    WHERE expiry_reported_at IS NULL AND revoked_at IS NULL;

CREATE TABLE sessions (
    id                 TEXT    PRIMARY KEY,
    user_name          TEXT    NOT NULL,
    target             TEXT    NOT NULL,
    login              TEXT    NOT NULL,
    grant_id           BIGINT  NOT NULL REFERENCES grants (id),
    command            TEXT,
    interactive        BOOLEAN NOT NULL,
    client             TEXT    NOT NULL,
    recording          TEXT    NOT NULL,
    started_at         BIGINT  NOT NULL,
    ended_at           BIGINT,
    end_reason         TEXT,
    bytes              BIGINT,
    recording_complete BOOLEAN
);

CREATE INDEX sessions_by_start ON sessions (started_at);
