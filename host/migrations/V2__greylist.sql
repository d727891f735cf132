-- Greylisting state shared by every smtpcell host of the cluster (issue 17):
-- one row per (client network, reverse-path, forward-path) triplet, the
-- record that host/src/policy/greylist/ keeps (store.rs, Record).
-- Addresses are lowercased; the null reverse-path <> is ''.
CREATE TABLE smtpcell_greylist_triplet (
    -- The client's address cut to the configured prefix (IPv4 /24, IPv6 /64).
    network      cidr        NOT NULL,
    reverse_path text        NOT NULL,
    forward_path text        NOT NULL,
    -- When the current attempt was first seen (and deferred).
    first_seen   timestamptz NOT NULL,
    -- Whether a retry passed: the triplet then passes until expires.
    passed       boolean     NOT NULL,
    -- The end of the retry window, or of the pass; removable after it.
    expires      timestamptz NOT NULL,
    PRIMARY KEY (network, reverse_path, forward_path)
);

-- For the hourly sweep of expired rows.
CREATE INDEX smtpcell_greylist_triplet_expires ON smtpcell_greylist_triplet (expires);
