-- The database copy of the audit log (PostgreSQL), so any node can export every node's events.
-- The file written by each node stays the primary record; a row here is the same JSON line.

CREATE TABLE audit_events (
    -- IDENTITY: ids only grow, so paging by id never skips or repeats a row.
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The event's `ts` in epoch milliseconds (the recording node's clock, not the database's).
    at         BIGINT  NOT NULL,
    -- The event name, e.g. 'grant.created'.
    event      TEXT    NOT NULL,
    -- The user and target the event names, when it names one: what exports filter on.
    user_name  TEXT,
    target     TEXT,
    -- The whole line as written to the audit log file, `ts` included, without its newline.
    event_json TEXT    NOT NULL
);

CREATE INDEX audit_events_by_at ON audit_events (at, id);
CREATE INDEX audit_events_by_user ON audit_events (user_name, at, id);
CREATE INDEX audit_events_by_target ON audit_events (target, at, id);
