//! One message's row set and the statement that inserts it: the
//! `smtpcell_message` row and its `smtpcell_recipient` rows (one per
//! recipient and destination), in one statement, so a batch costs one
//! round trip per message (see `V1__spool.sql` for the columns' meaning).

use std::net::IpAddr;
use std::time::SystemTime;

use tokio_postgres::types::ToSql;

use crate::spool::{Destination, MessageMeta};

/// Inserts a message and its recipients; returns its id. The recipients'
/// columns come as parallel arrays, one element per row.
pub(super) const INSERT: &str = "\
WITH message AS (
    INSERT INTO smtpcell_message (queue_id, received_at, receiving_host, client_ip, helo, reverse_path,
        protocol, body_type, smtputf8, dsn_ret, dsn_envid, tls_version, tls_cipher, authenticated,
        component, trace_headers, content)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
    RETURNING id
), recipients AS (
    INSERT INTO smtpcell_recipient (message_id, ordinal, recipient, address, notify, orcpt, destination, target)
    SELECT message.id, (r.ordinal - 1)::integer, r.recipient, r.address, r.notify, r.orcpt, r.destination, r.target
    FROM message,
        unnest($18::integer[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[])
        WITH ORDINALITY AS r (recipient, address, notify, orcpt, destination, target, ordinal)
)
SELECT id FROM message";

/// Tells listeners (`LISTEN smtpcell_message`) the ids of a batch's
/// messages; delivered when the transaction commits, and only then.
pub(super) const NOTIFY: &str = "SELECT pg_notify('smtpcell_message', id::text) FROM unnest($1::bigint[]) AS id";

/// Removes messages inserted by a batch that were cancelled before its
/// COMMIT (their recipient rows go with them).
pub(super) const DELETE: &str = "DELETE FROM smtpcell_message WHERE id = ANY($1)";

/// The values of one message's rows.
pub(super) struct MessageRows {
    queue_id: String,
    received_at: SystemTime,
    receiving_host: String,
    client_ip: IpAddr,
    helo: String,
    reverse_path: String,
    protocol: String,
    body_type: &'static str,
    smtputf8: bool,
    dsn_ret: Option<&'static str>,
    dsn_envid: Option<String>,
    tls_version: Option<String>,
    tls_cipher: Option<String>,
    authenticated: Option<String>,
    component: String,
    trace_headers: Vec<u8>,
    content: Vec<u8>,
    recipients: RecipientColumns,
}

/// The recipient rows, column by column.
#[derive(Default)]
struct RecipientColumns {
    recipient: Vec<i32>,
    address: Vec<String>,
    notify: Vec<Option<String>>,
    orcpt: Vec<Option<String>>,
    destination: Vec<&'static str>,
    target: Vec<Option<String>>,
}

impl MessageRows {
    /// The rows of the message `meta` describes, named `queue_id`, with its
    /// header block and content.
    pub fn new(meta: MessageMeta, queue_id: String, trace_headers: Vec<u8>, content: Vec<u8>) -> MessageRows {
        let mut recipients = RecipientColumns::default();
        for (i, rcpt) in meta.recipients.into_iter().enumerate() {
            for destination in &rcpt.destinations {
                let (kind, target) = match destination {
                    Destination::Inbox => ("inbox", None),
                    Destination::Mailbox(mailbox) => ("mailbox", Some(mailbox.address())),
                    Destination::Outgoing(forward_path) => ("outgoing", Some(forward_path.clone())),
                };
                recipients.recipient.push(i32::try_from(i).unwrap_or(i32::MAX));
                recipients.address.push(rcpt.address.clone());
                recipients.notify.push(rcpt.notify.clone());
                recipients.orcpt.push(rcpt.orcpt.clone());
                recipients.destination.push(kind);
                recipients.target.push(target);
            }
        }
        let (tls_version, tls_cipher) = match meta.tls {
            Some(tls) => (Some(tls.version), Some(tls.cipher)),
            None => (None, None),
        };
        MessageRows {
            queue_id,
            received_at: meta.received_at,
            receiving_host: meta.server_hostname,
            client_ip: meta.client_ip,
            helo: meta.helo,
            reverse_path: meta.reverse_path,
            protocol: meta.protocol,
            body_type: meta.body,
            smtputf8: meta.smtputf8,
            dsn_ret: meta.dsn_return,
            dsn_envid: meta.dsn_envid,
            tls_version,
            tls_cipher,
            authenticated: meta.authenticated,
            component: meta.handled_by,
            trace_headers,
            content,
            recipients,
        }
    }

    /// The parameters of [`INSERT`], in order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 23] {
        let r = &self.recipients;
        [
            &self.queue_id,
            &self.received_at,
            &self.receiving_host,
            &self.client_ip,
            &self.helo,
            &self.reverse_path,
            &self.protocol,
            &self.body_type,
            &self.smtputf8,
            &self.dsn_ret,
            &self.dsn_envid,
            &self.tls_version,
            &self.tls_cipher,
            &self.authenticated,
            &self.component,
            &self.trace_headers,
            &self.content,
            &r.recipient,
            &r.address,
            &r.notify,
            &r.orcpt,
            &r.destination,
            &r.target,
        ]
    }
}
