-- Recording search, retention and control (SQLite). Times are epoch milliseconds from the
-- database clock, like the rest of the schema.

-- When the recording's text was indexed (NULL: not yet, see recordings::indexer).
ALTER TABLE sessions ADD COLUMN indexed_at BIGINT;
-- Legal hold: a held recording is never pruned.
ALTER TABLE sessions ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE sessions ADD COLUMN hold_reason TEXT;
ALTER TABLE sessions ADD COLUMN held_by TEXT;
ALTER TABLE sessions ADD COLUMN held_at BIGINT;
-- Pruned sessions keep their row (who reached what, when) but lose recording and text.
ALTER TABLE sessions ADD COLUMN pruned_at BIGINT;
ALTER TABLE sessions ADD COLUMN pruned_by TEXT;
-- `bastion sessions end`: the daemon ends the session when it sees the request.
ALTER TABLE sessions ADD COLUMN end_requested_at BIGINT;
ALTER TABLE sessions ADD COLUMN end_requested_by TEXT;
-- Last `bastion recordings verify` outcome: complete, truncated or tampered.
ALTER TABLE sessions ADD COLUMN verify_status TEXT;
ALTER TABLE sessions ADD COLUMN verified_at BIGINT;

CREATE INDEX sessions_by_end ON sessions (ended_at);

-- The searchable text of each recording: typed command lines, output lines (escape sequences
-- stripped) and markers, with their time offset in seconds from the recording's start.
CREATE TABLE recording_text (
    id         INTEGER PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    t          REAL    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('command', 'output', 'marker')),
    text       TEXT    NOT NULL
);

CREATE INDEX recording_text_by_session ON recording_text (session_id, t);

-- Full-text index over recording_text.text (external content: the text is stored once).
-- unicode61 splits on everything but letters and digits and folds case.
CREATE VIRTUAL TABLE recording_text_fts USING fts5 (
    text,
    content = 'recording_text',
    content_rowid = 'id',
    tokenize = 'unicode61'
);

CREATE TRIGGER recording_text_indexed AFTER INSERT ON recording_text BEGIN
    INSERT INTO recording_text_fts (rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER recording_text_unindexed AFTER DELETE ON recording_text BEGIN
    INSERT INTO recording_text_fts (recording_text_fts, rowid, text)
    VALUES ('delete', old.id, old.text);
END;
