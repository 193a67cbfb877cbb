-- Just-in-time access: requests, their approvals, and where each grant came from.
-- Times are epoch milliseconds from the database clock.

CREATE TABLE access_requests (
    -- A short token such as 'r-7f3k', unique; what people type to approve or deny.
    id               TEXT    PRIMARY KEY,
    -- 'access' (a new grant), 'extend' (more time on grant_id) or 'break_glass'.
    kind             TEXT    NOT NULL,
    user_name        TEXT    NOT NULL,
    target           TEXT    NOT NULL,
    -- JSON array of logins the resulting grant allows.
    logins           TEXT    NOT NULL,
    -- How long the grant lasts (or, for 'extend', how much longer), from its approval.
    duration_ms      BIGINT  NOT NULL,
    -- Delay between the approval and the grant's start.
    starts_in_ms     BIGINT  NOT NULL,
    reason           TEXT    NOT NULL,
    -- The [[policies]] entry that applied, and the approvals it asked for.
    policy           TEXT    NOT NULL,
    approvals_needed INTEGER NOT NULL,
    -- The scope the resulting grant carries (see grants.commands and grants.pty).
    commands         TEXT    NOT NULL,
    pty              BOOLEAN NOT NULL,
    -- Where the requester connected from (or 'cli').
    client           TEXT    NOT NULL,
    -- 'pending', 'approved', 'denied', 'cancelled' or 'expired'.
    state            TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    -- An undecided request expires at this time (the policy's request_ttl).
    expires_at       BIGINT  NOT NULL,
    decided_at       BIGINT,
    -- Who denied or cancelled it; for an auto-approval, the rule; for break glass, the user.
    decided_by       TEXT,
    -- The denial's reason, or why an approved extension changed nothing.
    decision_note    TEXT,
    -- The grant the approval created, or the grant an extension is for.
    grant_id         BIGINT  REFERENCES grants (id)
);

CREATE INDEX access_requests_pending ON access_requests (state, expires_at);
CREATE INDEX access_requests_by_user ON access_requests (user_name, state);

CREATE TABLE request_approvals (
    request_id TEXT   NOT NULL REFERENCES access_requests (id),
    approver   TEXT   NOT NULL,
    comment    TEXT,
    client     TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    -- N of M means N distinct approvers.
    PRIMARY KEY (request_id, approver)
);

-- Where a grant came from: 'admin' (bastion grant add), 'request', 'auto' or 'break_glass'.
ALTER TABLE grants ADD COLUMN origin TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE grants ADD COLUMN request_id TEXT;
-- Break-glass grants wait for an approver's review.
ALTER TABLE grants ADD COLUMN review_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE grants ADD COLUMN reviewed_at BIGINT;
ALTER TABLE grants ADD COLUMN reviewed_by TEXT;
ALTER TABLE grants ADD COLUMN review_comment TEXT;
-- When the "grant started" audit event was claimed, so it is reported once. Grants made
-- before this column had their start reported (or not) by older code: mark them done.
ALTER TABLE grants ADD COLUMN start_reported_at BIGINT;
UPDATE grants SET start_reported_at = starts_at;
CREATE INDEX grants_unreported_start ON grants (starts_at) WHERE start_reported_at IS NULL;
