//! Greylisting with a fake clock and a real database file in a temporary
//! directory: deferred, retried, passed, expired, swept, restarted.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use tempfile::TempDir;

use super::*;
use crate::policy::FakeClock;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

struct Fixture {
    dir: TempDir,
    clock: Arc<FakeClock>,
    greylist: Greylist,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FakeClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        let greylist = Greylist::open(&config(&dir), clock.clone()).unwrap();
        Fixture { dir, clock, greylist }
    }

    /// A check of `from` for <a@sender.example> to <b@local.example>.
    async fn check(&self, from: &str) -> Verdict {
        self.greylist.check(ip(from), "a@sender.example", "b@local.example").await
    }
}

fn config(dir: &TempDir) -> GreylistingConfig {
    GreylistingConfig { enabled: true, database: dir.path().join("greylist.redb"), ..GreylistingConfig::default() }
}

/// [`Fixture::check`] on another greylist.
async fn first(g: &Greylist) -> Verdict {
    g.check(ip("192.0.2.1"), "a@sender.example", "b@local.example").await
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[tokio::test]
async fn the_first_attempt_and_early_retries_defer_and_a_retry_in_the_window_passes() {
    let f = Fixture::new();
    assert_eq!(f.check("192.0.2.1").await, Verdict::Defer);
    f.clock.advance(4 * MINUTE);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Defer);
    // The early retry did not restart the delay: 5 minutes after the first.
    f.clock.advance(MINUTE);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Pass);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Pass);
}

#[tokio::test]
async fn a_passed_triplet_passes_for_thirty_days_renewed_as_it_passes() {
    let f = Fixture::new();
    f.check("192.0.2.1").await;
    f.clock.advance(10 * MINUTE);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Pass);
    f.clock.advance(29 * DAY);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Pass);
    // Renewed by that pass: 58 days after the first, it still passes.
    f.clock.advance(29 * DAY);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Pass);
    // 30 days without mail: greylisted again.
    f.clock.advance(30 * DAY);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Defer);
}

#[tokio::test]
async fn a_retry_after_expiry_is_a_first_attempt_again() {
    let f = Fixture::new();
    f.check("192.0.2.1").await;
    f.clock.advance(4 * HOUR);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Defer);
    f.clock.advance(4 * MINUTE);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Defer);
    f.clock.advance(MINUTE);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Pass);
}

#[tokio::test]
async fn a_retry_from_the_same_network_passes_and_another_network_is_a_new_triplet() {
    let f = Fixture::new();
    f.check("192.0.2.1").await;
    f.check("2001:db8:0:1::1").await;
    f.clock.advance(5 * MINUTE);
    // Another address of the sender's pool.
    assert_eq!(f.check("192.0.2.200").await, Verdict::Pass);
    assert_eq!(f.check("::ffff:192.0.2.9").await, Verdict::Pass);
    assert_eq!(f.check("2001:db8:0:1:ffff::2").await, Verdict::Pass);
    assert_eq!(f.check("192.0.3.1").await, Verdict::Defer);
    assert_eq!(f.check("2001:db8:0:2::1").await, Verdict::Defer);
}

#[tokio::test]
async fn each_reverse_path_and_recipient_is_its_own_triplet_in_any_case() {
    let f = Fixture::new();
    let g = &f.greylist;
    let from = ip("192.0.2.1");
    g.check(from, "a@sender.example", "b@local.example").await;
    f.clock.advance(5 * MINUTE);
    assert_eq!(g.check(from, "A@Sender.Example", "B@LOCAL.example").await, Verdict::Pass);
    assert_eq!(g.check(from, "a@sender.example", "c@local.example").await, Verdict::Defer);
    assert_eq!(g.check(from, "z@sender.example", "b@local.example").await, Verdict::Defer);
    // The null reverse-path is a reverse-path like another.
    assert_eq!(g.check(from, "", "b@local.example").await, Verdict::Defer);
    f.clock.advance(5 * MINUTE);
    assert_eq!(g.check(from, "", "b@local.example").await, Verdict::Pass);
}

#[tokio::test]
async fn expired_records_are_swept_by_the_first_check_an_hour_after_the_last_sweep() {
    let f = Fixture::new();
    let store = RedbStore::open(&f.dir.path().join("other.redb")).unwrap();
    let store = Arc::new(store);
    let g = Greylist::with_store(&config(&f.dir), store.clone(), f.clock.clone()).unwrap();
    let from = ip("192.0.2.1");
    // Sweeps (nothing) at once: a sweep is due at start.
    g.check(from, "old@sender.example", "b@local.example").await;
    g.check(from, "passed@sender.example", "b@local.example").await;
    f.clock.advance(5 * MINUTE);
    g.check(from, "passed@sender.example", "b@local.example").await;
    assert_eq!(store.len(), 2);
    // Four hours on the first has expired, the passed one has not; the
    // last sweep was four hours ago, so this check sweeps.
    f.clock.advance(4 * HOUR);
    g.check(from, "new@sender.example", "b@local.example").await;
    assert_eq!(store.len(), 2, "old@ removed, new@ added");
    assert_eq!(g.check(from, "passed@sender.example", "b@local.example").await, Verdict::Pass);
    // A pass that lapsed goes too, and not before the next hour.
    f.clock.advance(30 * DAY);
    g.check(from, "newer@sender.example", "b@local.example").await;
    assert_eq!(store.len(), 1);
    f.clock.advance(10 * MINUTE);
    g.check(from, "newest@sender.example", "b@local.example").await;
    assert_eq!(store.len(), 2, "the first sight of newer@ expires only hours later");
}

#[tokio::test]
async fn the_state_survives_a_restart() {
    let f = Fixture::new();
    assert_eq!(f.check("192.0.2.1").await, Verdict::Defer);
    let Fixture { dir, clock, greylist } = f;
    drop(greylist);
    clock.advance(5 * MINUTE);
    let reopened = Greylist::open(&config(&dir), clock.clone()).unwrap();
    assert_eq!(reopened.check(ip("192.0.2.1"), "a@sender.example", "b@local.example").await, Verdict::Pass);
}

#[tokio::test]
async fn a_reload_keeps_the_open_database_and_takes_the_new_timings() {
    let f = Fixture::new();
    // The file is locked while open: opening it again is refused.
    let err = Greylist::open(&config(&f.dir), f.clock.clone()).err().unwrap();
    assert!(format!("{err:#}").contains("greylist.redb"), "{err:#}");
    f.check("192.0.2.1").await;
    let longer = GreylistingConfig { min_delay_secs: 600, ..config(&f.dir) };
    let reloaded = f.greylist.reconfigured(&longer).unwrap();
    f.clock.advance(5 * MINUTE);
    assert_eq!(first(&reloaded).await, Verdict::Defer);
    f.clock.advance(5 * MINUTE);
    assert_eq!(first(&reloaded).await, Verdict::Pass);
    // Another path is another database.
    let elsewhere = GreylistingConfig { database: f.dir.path().join("b.redb"), ..longer };
    assert_eq!(first(&f.greylist.reconfigured(&elsewhere).unwrap()).await, Verdict::Defer);
}

/// A store whose every call fails, as a full disk or a dead server would.
struct Broken;

impl GreylistStore for Broken {
    fn get(&self, _: &Triplet) -> anyhow::Result<Option<Record>> {
        bail!("disk on fire")
    }
    fn put(&self, _: &Triplet, _: Record) -> anyhow::Result<()> {
        bail!("disk on fire")
    }
    fn remove_expired(&self, _: u64) -> anyhow::Result<u64> {
        bail!("disk on fire")
    }
}

#[tokio::test]
async fn a_failing_store_passes_the_mail() {
    let clock = Arc::new(FakeClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    let g = Greylist::with_store(&GreylistingConfig::default(), Arc::new(Broken), clock).unwrap();
    for _ in 0..3 {
        assert_eq!(g.check(ip("192.0.2.1"), "a@sender.example", "b@local.example").await, Verdict::Pass);
    }
}

#[test]
fn the_table_reads_with_defaults_and_bad_values_are_named() {
    let defaults: GreylistingConfig = toml::from_str("").unwrap();
    assert_eq!(defaults, GreylistingConfig::default());
    assert!(!defaults.enabled);
    assert_eq!((defaults.min_delay_secs, defaults.expiry_secs, defaults.pass_secs), (300, 14_400, 2_592_000));
    assert_eq!(defaults.database, PathBuf::from("./greylist.redb"));
    assert_eq!((defaults.ipv4_prefix.bits(), defaults.ipv6_prefix.bits()), (24, 64));
    defaults.validate().unwrap();

    for (text, named) in
        [("enable = true", "enable"), ("ipv4_prefix = 40", "ipv4_prefix"), ("min_delay_secs = -5", "min_delay_secs")]
    {
        let err = toml::from_str::<GreylistingConfig>(text).unwrap_err().to_string();
        assert!(err.contains(named) && err.contains("line 1"), "{text}: {err}");
    }
    for (text, named) in [
        ("min_delay_secs = 14400", "greylisting.min_delay_secs (14400) must be less than greylisting.expiry_secs"),
        ("pass_secs = 0", "greylisting.pass_secs"),
        ("expiry_secs = 999999999999", "greylisting.expiry_secs"),
    ] {
        let config: GreylistingConfig = toml::from_str(text).unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains(named), "{text}: {err}");
    }
}

#[test]
fn a_database_that_cannot_be_opened_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(SystemTime::UNIX_EPOCH));
    let missing_dir = GreylistingConfig { database: dir.path().join("no/such/dir/g.redb"), ..config(&dir) };
    let err = Greylist::open(&missing_dir, clock.clone()).err().unwrap();
    assert!(format!("{err:#}").contains("no/such/dir/g.redb"), "{err:#}");
    let not_redb = dir.path().join("not.redb");
    std::fs::write(&not_redb, "this is not a database, it is a text file of some length").unwrap();
    let err = Greylist::open(&GreylistingConfig { database: not_redb, ..config(&dir) }, clock).err().unwrap();
    assert!(format!("{err:#}").contains("not.redb"), "{err:#}");
}

/// A store that counts its reads, over a real one.
struct Counted {
    inner: RedbStore,
    reads: std::sync::atomic::AtomicUsize,
}

impl GreylistStore for Counted {
    fn get(&self, triplet: &Triplet) -> anyhow::Result<Option<Record>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.get(triplet)
    }
    fn put(&self, triplet: &Triplet, record: Record) -> anyhow::Result<()> {
        self.inner.put(triplet, record)
    }
    fn remove_expired(&self, now: u64) -> anyhow::Result<u64> {
        self.inner.remove_expired(now)
    }
}

#[tokio::test]
async fn a_known_pass_is_answered_from_memory_until_it_needs_the_store() {
    let f = Fixture::new();
    let store = Arc::new(Counted {
        inner: RedbStore::open(&f.dir.path().join("counted.redb")).unwrap(),
        reads: Default::default(),
    });
    let g = Greylist::with_store(&config(&f.dir), store.clone(), f.clock.clone()).unwrap();
    let reads = || store.reads.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(first(&g).await, Verdict::Defer);
    // Early retries are the store's to judge, every time.
    assert_eq!(first(&g).await, Verdict::Defer);
    assert_eq!(reads(), 2);
    f.clock.advance(5 * MINUTE);
    assert_eq!(first(&g).await, Verdict::Pass);
    assert_eq!((reads(), g.passes.len()), (3, 1));
    for _ in 0..100 {
        assert_eq!(first(&g).await, Verdict::Pass);
    }
    assert_eq!(reads(), 3, "a known pass reads nothing");
    // A day on, the pass is due for renewal: the store renews it, and
    // memory keeps the renewed record.
    f.clock.advance(DAY);
    assert_eq!(first(&g).await, Verdict::Pass);
    assert_eq!(reads(), 4);
    f.clock.advance(29 * DAY);
    assert_eq!(first(&g).await, Verdict::Pass, "renewed a day in, the pass lasts to day 31");
    // Past its end, the store is asked again and greylists afresh; the
    // hourly sweep forgot the expired pass.
    f.clock.advance(31 * DAY);
    let before = reads();
    assert_eq!(first(&g).await, Verdict::Defer);
    assert_eq!(reads(), before + 1);
    assert_eq!(g.passes.len(), 0);
}

#[tokio::test]
async fn a_reload_keeps_the_passes_in_memory() {
    let f = Fixture::new();
    f.check("192.0.2.1").await;
    f.clock.advance(5 * MINUTE);
    assert_eq!(f.check("192.0.2.1").await, Verdict::Pass);
    let reloaded = f.greylist.reconfigured(&GreylistingConfig { min_delay_secs: 600, ..config(&f.dir) }).unwrap();
    assert_eq!(reloaded.passes.len(), 1);
    assert_eq!(first(&reloaded).await, Verdict::Pass);
}

#[test]
fn the_passes_in_memory_are_bounded_and_a_full_map_is_emptied_by_the_sweep() {
    let passes = passes::Passes::default();
    let pass = Record { first_seen: 0, passed: true, expires: 1000 };
    let triplet = |n: u32| Triplet {
        network: "192.0.2.0/24".parse().unwrap(),
        reverse_path: format!("sender{n}@example.org"),
        forward_path: "b@local.example".into(),
    };
    for n in 0..150_000 {
        passes.keep(&triplet(n), Some(pass));
    }
    assert_eq!(passes.len(), 100_000);
    // A known pass is still renewed in place; a deferral forgets it.
    passes.keep(&triplet(7), Some(Record { expires: 2000, ..pass }));
    assert_eq!(passes.get(&triplet(7)).unwrap().expires, 2000);
    passes.keep(&triplet(8), Some(Record { passed: false, ..pass }));
    assert!(passes.get(&triplet(8)).is_none());
    passes.forget_expired(10);
    assert_eq!(passes.len(), 0, "full: emptied");
    passes.keep(&triplet(1), Some(pass));
    passes.keep(&triplet(2), Some(Record { expires: 5, ..pass }));
    passes.forget_expired(10);
    assert_eq!((passes.len(), passes.get(&triplet(1))), (1, Some(pass)));
}
