-- Shared rate limits (issue 17; [rate_limits] shared = true): one GCRA cell
-- per (limit, key), the theoretical arrival time of the next request
-- (host/src/policy/rate_limits/postgres_cells.rs). A key whose tat_us is
-- in the past is the same as a key never seen, and is swept.
--
-- UNLOGGED: every counted request writes its cells, and counters are worth
-- neither a WAL record nor a wait for a synchronous standby; a crash or a
-- failover empties the table, which forgives every client its current
-- window, as restarting a host does with per-host limits.
CREATE UNLOGGED TABLE smtpcell_rate_limit_cell (
    -- The limit's key in [rate_limits], e.g. client_messages_per_minute.
    rate_limit text   NOT NULL,
    -- The client's address, its network (CIDR), the user or the reverse-path.
    key        text   NOT NULL,
    -- Microseconds since the UNIX epoch.
    tat_us     bigint NOT NULL,
    PRIMARY KEY (rate_limit, key)
);
