//! Where greylisting keeps its state: a small trait, so that the
//! scale-out issue can keep it in a shared database, and what it keeps.
//! The store only reads, writes and removes records; every decision is
//! the greylist's (super::decide).

use ipnet::IpNet;

/// The key greylisting counts retries by: the client's network (not its
/// address: large senders retry from other addresses of their pool), the
/// transaction's reverse-path and one forward-path, both lowercased (empty
/// reverse-path for `<>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Triplet {
    pub network: IpNet,
    pub reverse_path: String,
    pub forward_path: String,
}

/// What is kept per triplet; times are whole seconds since the UNIX epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// When the current attempt was first seen (and deferred).
    pub first_seen: u64,
    /// Whether a retry has passed: the triplet passes until `expires`.
    pub passed: bool,
    /// When the record means nothing any more and may be removed: the end
    /// of the retry window, or of the pass.
    pub expires: u64,
}

/// Greylisting's storage. Calls block (they run on
/// `tokio::task::spawn_blocking`); errors are reported, and the greylist
/// passes the mail rather than defer all mail while its store is down.
///
/// A check reads, then maybe writes, without one transaction around both:
/// two checks of one triplet at once decide from the same record and write
/// the same thing, give or take a second, which is harmless.
pub trait GreylistStore: Send + Sync + 'static {
    /// The triplet's record, if one is kept (expired or not).
    fn get(&self, triplet: &Triplet) -> anyhow::Result<Option<Record>>;

    /// Keeps `record` for the triplet, replacing any, durably once this
    /// returns (greylisting state survives a restart).
    fn put(&self, triplet: &Triplet, record: Record) -> anyhow::Result<()>;

    /// Removes every record whose `expires` is at or before `now`; returns
    /// how many.
    fn remove_expired(&self, now: u64) -> anyhow::Result<u64>;
}
