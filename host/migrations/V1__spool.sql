-- The spool: one row per accepted message, one row per recipient and
-- destination. A contract with consumers (README, "PostgreSQL (scale-out)"):
-- columns are only ever added, by later migrations.

CREATE TABLE smtpcell_message (
    -- Assigned at insert: increasing, but concurrent transactions (two
    -- hosts, or one host's consecutive batches) may commit out of id order.
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The id the client was given in the 250 reply and that the Received
    -- field names.
    queue_id        text        NOT NULL UNIQUE,
    received_at     timestamptz NOT NULL,
    -- The receiving host's name (--hostname), as in the Received field.
    receiving_host  text        NOT NULL,
    client_ip       inet        NOT NULL,
    helo            text        NOT NULL,
    -- Without angle brackets; '' for the null reverse-path <>.
    reverse_path    text        NOT NULL,
    -- RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, ...
    protocol        text        NOT NULL,
    body_type       text        NOT NULL CHECK (body_type IN ('7BIT', '8BITMIME', 'BINARYMIME')),
    smtputf8        boolean     NOT NULL,
    -- RFC 3461 MAIL parameters.
    dsn_ret         text        CHECK (dsn_ret IN ('FULL', 'HDRS')),
    dsn_envid       text,
    -- The TLS session the message came over, if any.
    tls_version     text,
    tls_cipher      text,
    -- The SASL identity, when the server writes it into the trace
    -- (received_auth).
    authenticated   text,
    -- The protocol component that handled the session (name@version).
    component       text        NOT NULL,
    -- The header block smtpcell adds above the content, CRLF line ends:
    -- Return-Path, X-Envelope-To, X-Envelope-Body, the end-of-data fields
    -- (Authentication-Results, ...), Received. trace_headers || content is
    -- what a Maildir copy of the message holds.
    trace_headers   bytea       NOT NULL,
    -- The message as the client sent it (dot-unstuffed), byte for byte.
    content         bytea       NOT NULL
);

CREATE TABLE smtpcell_recipient (
    message_id      bigint      NOT NULL REFERENCES smtpcell_message (id) ON DELETE CASCADE,
    -- Row number within the message.
    ordinal         integer     NOT NULL,
    -- The recipient's place in the envelope (RCPT order, from 0); a
    -- recipient with several destinations (an alias) has several rows.
    recipient       integer     NOT NULL,
    -- The forward-path as given in RCPT TO, without angle brackets.
    address         text        NOT NULL,
    -- RFC 3461 RCPT parameters.
    notify          text,
    orcpt           text,
    -- Where the policy routed it: 'inbox' (no recipients table), 'mailbox'
    -- (a local user; target is user@domain) or 'outgoing' (to be relayed;
    -- target is the forward-path to deliver to).
    destination     text        NOT NULL CHECK (destination IN ('inbox', 'mailbox', 'outgoing')),
    target          text,
    PRIMARY KEY (message_id, ordinal)
);

CREATE INDEX smtpcell_recipient_target ON smtpcell_recipient (destination, target);
