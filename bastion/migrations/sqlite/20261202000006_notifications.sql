-- Webhook notifications (SQLite): which node took which audit event to post. A node posts an
-- event only after its claim was inserted, so with several nodes each event is posted once.

CREATE TABLE notification_claims (
    -- audit_events.id of the event posted (no foreign key: the audit table may be pruned).
    event_id   BIGINT  PRIMARY KEY,
    -- The node that posts it.
    node_id    TEXT    NOT NULL,
    -- Database clock, epoch milliseconds; old claims are deleted once no poll can reach
    -- their events any more.
    claimed_at BIGINT  NOT NULL
);

CREATE INDEX notification_claims_by_claimed_at ON notification_claims (claimed_at);
