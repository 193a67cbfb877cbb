-- Which bastion ran each session, and sessions that were deliberately not recorded.

-- The daemon's `node_id`. At start a daemon marks its own sessions that a crash left open as
-- ended ('interrupted'); another node's sessions are never touched. NULL for rows written
-- before this column existed.
ALTER TABLE sessions ADD COLUMN node TEXT;
-- FALSE: the target has `record = false`, so there is no recording to index, verify or prune.
ALTER TABLE sessions ADD COLUMN recorded BOOLEAN NOT NULL DEFAULT TRUE;

CREATE INDEX sessions_open_by_node ON sessions (node) WHERE ended_at IS NULL;
