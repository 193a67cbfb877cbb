-- Recording search, retention and control (PostgreSQL). Times are epoch milliseconds from the
-- database clock, like the rest of the schema.

ALTER TABLE sessions
    -- When the recording's text was indexed (NULL: not yet, see recordings::indexer).
    ADD COLUMN indexed_at       BIGINT,
    -- Legal hold: a held recording is never pruned.
    ADD COLUMN legal_hold       BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN hold_reason      TEXT,
    ADD COLUMN held_by          TEXT,
    ADD COLUMN held_at          BIGINT,
    -- Pruned sessions keep their row (who reached what, when) but lose recording and text.
    ADD COLUMN pruned_at        BIGINT,
    ADD COLUMN pruned_by        TEXT,
    -- `bastion sessions end`: the daemon ends the session when it sees the request.
    ADD COLUMN end_requested_at BIGINT,
    ADD COLUMN end_requested_by TEXT,
    -- Last `bastion recordings verify` outcome: complete, truncated or tampered.
    ADD COLUMN verify_status    TEXT,
    ADD COLUMN verified_at      BIGINT;

CREATE INDEX sessions_by_end ON sessions (ended_at);

-- The searchable text of each recording: typed command lines, output lines (escape sequences
-- stripped) and markers, with their time offset in seconds from the recording's start.
-- `words` tokenizes like SQLite's unicode61 (runs of letters and digits, case folded), so
-- both databases find the same rows for the same query.
CREATE TABLE recording_text (
    id         BIGINT           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id TEXT             NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    t          DOUBLE PRECISION NOT NULL,
    kind       TEXT             NOT NULL CHECK (kind IN ('command', 'output', 'marker')),
    text       TEXT             NOT NULL,
    words      tsvector         GENERATED ALWAYS AS
        (to_tsvector('simple'::regconfig, regexp_replace(text, '[^[:alnum:]]+', ' ', 'g'))) STORED
);

CREATE INDEX recording_text_by_session ON recording_text (session_id, t);
CREATE INDEX recording_text_words ON recording_text USING GIN (words);
