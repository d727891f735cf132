//! The DNS resolver the checks ask: hickory's (through mail-auth), with
//! its cache, which keeps answers, NXDOMAIN included, for their TTLs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::system_conf::read_system_conf;

/// Records kept by the cache (hickory's default). An entry is a record
/// set, a few hundred octets: about 2-4 MiB when full.
const CACHE_RECORDS: u64 = 8_192;
/// How long one query waits for an answer before it is sent again (once).
/// A whole check is bounded by `timeout_secs` besides.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// A resolver asking `server` (UDP, then TCP for truncated answers), or
/// the system's resolvers (/etc/resolv.conf) without one. Errors: an
/// unreadable /etc/resolv.conf.
pub fn resolver(server: Option<SocketAddr>) -> Result<MessageAuthenticator> {
    let (config, mut opts) = match server {
        Some(addr) => {
            let mut name_server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut name_server.connections {
                connection.port = addr.port();
            }
            (ResolverConfig::from_name_servers(vec![name_server]), ResolverOpts::default())
        }
        None => read_system_conf().context("reading the system's resolvers (/etc/resolv.conf); or give dns_server")?,
    };
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 2;
    opts.cache_size = CACHE_RECORDS;
    // Names are absolute (mail-auth ends them with a dot): no search list.
    opts.ndots = 0;
    MessageAuthenticator::new(config, opts).context("building the DNS resolver")
}
