-- Several bastion nodes sharing one database: who they are, the keys they sign recordings
-- with, and the target host keys any of them learned on first use.

-- One row per `node_id`, written when a daemon starts and refreshed by its heartbeat. A node
-- whose `last_seen` is older than `[nodes] stale_after` is silent: its open sessions are shown
-- by `bastion sessions list --stale`. Times are epoch milliseconds on the database clock.
CREATE TABLE bastion_nodes (
    node_id    TEXT   PRIMARY KEY,
    started_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    host       TEXT   NOT NULL,
    pid        BIGINT NOT NULL
);

-- Every recording-signing public key a node has used (64 hex digits of the ed25519 key).
-- Old keys stay after a rotation, so recordings signed with them still verify on any node.
CREATE TABLE node_signing_keys (
    node_id     TEXT   NOT NULL,
    signing_key TEXT   NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (node_id, signing_key)
);

-- Target host keys trusted on first use, by target name as the config names it (what the
-- node-local `known_targets` file used to hold): a key learned by one node binds every node.
-- `host_key` is `ALGORITHM BASE64` without a comment; `address` is where it was learned.
CREATE TABLE target_host_keys (
    target     TEXT   PRIMARY KEY,
    address    TEXT   NOT NULL,
    host_key   TEXT   NOT NULL,
    learned_at BIGINT NOT NULL,
    learned_by TEXT   NOT NULL
);
