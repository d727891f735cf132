//! RFC 7208 section 4.6.4's limit on "void lookups" (DNS queries answered
//! NXDOMAIN, or NOERROR with no answers): more than 2 in one SPF
//! evaluation make its result `permerror`. mail-auth 0.13 does not count
//! them, so we watch its queries from outside: before every query it asks
//! the caches of its `Parameters`, and after every answer it offers the
//! answer to them. The caches given here hold nothing (every lookup goes
//! on to hickory, whose own cache answers repeats, so a cached answer is
//! still seen as a lookup of this evaluation) and only write down what
//! was asked, in order, and whether the answer had records. A query that
//! failed is not offered; only when it could matter (more than 2 lookups
//! without records) is such a query asked again, from hickory's cache, to
//! tell a void answer from a server failure.
//!
//! Which lookups count follows pyspf, the RFC authors' implementation:
//! every address, MX and PTR query of the evaluation (`a`, `mx` and its
//! exchanges, `ptr` and its validation, `exists`, the `%{p}` macro). TXT
//! queries are left out: a void `include` or `redirect` target is already
//! `permerror` in mail-auth, the first record's absence is `none`, and
//! `exp=` does not count (pyspf's `ignore_void`).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::common::cache::NoCache;
use mail_auth::{DnsError, Error, MX, MessageAuthenticator, RecordSet, ResolverCache, SpfOutput, SpfResult, Txt};

/// Void lookups allowed in one evaluation (RFC 7208 section 4.6.4).
pub const VOID_LOOKUP_LIMIT: usize = 2;

/// What one query asked.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Query {
    /// A TXT record (an SPF record or an explanation): never counted.
    Txt,
    /// A records of a name (`a`, an MX exchange, a PTR name's validation).
    A(Box<str>),
    /// AAAA records of a name.
    Aaaa(Box<str>),
    /// `exists`: mail-auth asks hickory for A then AAAA without offering
    /// the answer, so it is always re-asked when it could matter.
    Exists(Box<str>),
    Mx(Box<str>),
    /// PTR records of the client's address (`ptr`, `%{p}`).
    Ptr,
}

/// One query and what came of it as far as the caches saw.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Lookup {
    query: Query,
    /// `Some(has_records)` when mail-auth offered the answer to the cache;
    /// `None` when it did not: the query failed (void or not), or it was
    /// an `exists`.
    answer: Option<bool>,
}

/// The caches of one SPF evaluation (`Parameters::with_*_cache`), which
/// write down its queries. One recorder per evaluation: the HELO and the
/// MAIL FROM identities are two.
#[derive(Default)]
pub struct Recorder {
    lookups: Mutex<Vec<Lookup>>,
}

impl Recorder {
    fn asked(&self, query: Query) {
        let mut lookups = self.lookups.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // mail-auth's `exists` consults the A cache, then the AAAA cache,
        // with the same name; nothing else asks both in a row (an
        // evaluation asks one family only, its client's).
        if let (Query::Aaaa(name), Some(last)) = (&query, lookups.last_mut())
            && last.query == Query::A(name.clone())
            && last.answer.is_none()
        {
            last.query = Query::Exists(name.clone());
            return;
        }
        lookups.push(Lookup { query, answer: None });
    }

    /// mail-auth offers an answer right after asking for it.
    fn answered(&self, has_records: bool) {
        let mut lookups = self.lookups.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(last) = lookups.last_mut() {
            last.answer = Some(has_records);
        }
    }

    fn take(&self) -> Vec<Lookup> {
        std::mem::take(&mut *self.lookups.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// `output` (the evaluation's result), or `permerror` when the
    /// evaluation made more than `VOID_LOOKUP_LIMIT` void lookups. `ip` is
    /// the client's address (the PTR queries' subject); `resolver` is the
    /// one the evaluation asked, asked again for failed queries.
    pub async fn limit(&self, resolver: &MessageAuthenticator, ip: IpAddr, output: SpfOutput) -> SpfOutput {
        let lookups = self.take();
        let mut voids = 0;
        for lookup in candidates(&lookups, output.result()) {
            let void = match lookup.answer {
                Some(has_records) => !has_records,
                None => void_now(resolver, ip, &lookup.query).await,
            };
            voids += usize::from(void);
            // A conforming evaluation stops here, whatever came after.
            if voids > VOID_LOOKUP_LIMIT {
                return SpfOutput::new(output.domain().to_string()).with_result(SpfResult::PermError);
            }
        }
        output
    }
}

/// The lookups of an evaluation that ended in `result` that may have been
/// void, in order: none when fewer than the limit could be (the common
/// case costs no query), nor when the result is already `permerror` or
/// `none` (no term was evaluated). A `temperror` came from the last query,
/// which failed and so was not void.
fn candidates(lookups: &[Lookup], result: SpfResult) -> Vec<&Lookup> {
    if matches!(result, SpfResult::PermError | SpfResult::None) {
        return Vec::new();
    }
    let evaluated = match result {
        SpfResult::TempError => &lookups[..lookups.len().saturating_sub(1)],
        _ => lookups,
    };
    let maybe_void: Vec<&Lookup> =
        evaluated.iter().filter(|lookup| lookup.query != Query::Txt && lookup.answer != Some(true)).collect();
    if maybe_void.len() > VOID_LOOKUP_LIMIT { maybe_void } else { Vec::new() }
}

/// Whether `query`, asked again, is answered NXDOMAIN or without records:
/// hickory reports exactly those two as "no records found" (mail-auth's
/// `RecordNotFound`); any other failure is not void.
async fn void_now(resolver: &MessageAuthenticator, ip: IpAddr, query: &Query) -> bool {
    fn void<T>(answer: mail_auth::Result<RecordSet<T>>) -> bool {
        match answer {
            Ok(records) => records.rrset.is_empty(),
            Err(Error::Dns(DnsError::RecordNotFound(_))) => true,
            Err(_) => false,
        }
    }
    match query {
        Query::Txt => false,
        Query::A(name) => void(resolver.ipv4_lookup(name.as_ref(), None::<&NoCache<_, _>>).await),
        Query::Aaaa(name) => void(resolver.ipv6_lookup(name.as_ref(), None::<&NoCache<_, _>>).await),
        Query::Mx(name) => void(resolver.mx_lookup(name.as_ref(), None::<&NoCache<_, _>>).await),
        Query::Ptr => void(resolver.ptr_lookup(ip, None::<&NoCache<_, _>>).await),
        // mail-auth's `exists` is false exactly when no address was found.
        Query::Exists(name) => {
            matches!(resolver.exists(name.as_ref(), None::<&NoCache<_, _>>, None::<&NoCache<_, _>>).await, Ok(false))
        }
    }
}

/// The name a cache is asked about. The caches' `get` only sees it as a
/// `Q` that a `Box<str>` borrows as, which is `str` or `Box<str>`, both
/// hashed as `str` is: its bytes, then 0xff (`Hasher::write_str`). So a
/// hasher that keeps the bytes gets the name back. `None` if that ever
/// changes (then the lookup is never counted as void; a unit test says
/// so first).
fn name_of<Q: Hash + ?Sized>(key: &Q) -> Option<Box<str>> {
    #[derive(Default)]
    struct Bytes(Vec<u8>);
    impl Hasher for Bytes {
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut bytes = Bytes::default();
    key.hash(&mut bytes);
    let name = bytes.0.strip_suffix(&[0xff])?;
    std::str::from_utf8(name).ok().map(Into::into)
}

/// The cache of one record type: `get` writes the query down and finds
/// nothing, `insert` writes down whether the answer had records.
macro_rules! recording_cache {
    ($key:ty, $value:ty, |$name:ident| $query:expr, |$answer:ident| $has_records:expr) => {
        impl ResolverCache<$key, $value> for Recorder {
            fn get<Q>(&self, $name: &Q) -> Option<$value>
            where
                $key: Borrow<Q>,
                Q: Hash + Eq + ?Sized,
            {
                self.asked($query);
                None
            }

            fn remove<Q>(&self, _: &Q) -> Option<$value>
            where
                $key: Borrow<Q>,
                Q: Hash + Eq + ?Sized,
            {
                None
            }

            fn insert(&self, _: $key, $answer: $value, _: Instant) {
                self.answered($has_records);
            }
        }
    };
}

recording_cache!(Box<str>, Txt, |_name| Query::Txt, |_answer| true);
recording_cache!(Box<str>, RecordSet<MX>, |name| Query::Mx(name_of(name).unwrap_or_default()), |answer| !answer
    .rrset
    .is_empty());
recording_cache!(Box<str>, RecordSet<Ipv4Addr>, |name| Query::A(name_of(name).unwrap_or_default()), |answer| !answer
    .rrset
    .is_empty());
recording_cache!(Box<str>, RecordSet<Ipv6Addr>, |name| Query::Aaaa(name_of(name).unwrap_or_default()), |answer| {
    !answer.rrset.is_empty()
});
recording_cache!(IpAddr, RecordSet<Box<str>>, |_name| Query::Ptr, |answer| !answer.rrset.is_empty());

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mail_auth::DnssecStatus;

    use super::*;

    fn records<T>(items: Vec<T>) -> RecordSet<T> {
        RecordSet { rrset: Arc::from(items.into_boxed_slice()), dnssec_status: DnssecStatus::Indeterminate }
    }

    /// The calls mail-auth makes for an A lookup of `name`, answered with
    /// `answer` records, or failed (`None`).
    fn a(recorder: &Recorder, name: &str, answer: Option<Vec<Ipv4Addr>>) {
        assert!(ResolverCache::<Box<str>, RecordSet<Ipv4Addr>>::get::<str>(recorder, name).is_none());
        if let Some(answer) = answer {
            ResolverCache::<Box<str>, RecordSet<Ipv4Addr>>::insert(
                recorder,
                name.into(),
                records(answer),
                Instant::now(),
            );
        }
    }

    fn exists(recorder: &Recorder, name: &str) {
        assert!(ResolverCache::<Box<str>, RecordSet<Ipv4Addr>>::get::<str>(recorder, name).is_none());
        assert!(ResolverCache::<Box<str>, RecordSet<Ipv6Addr>>::get::<str>(recorder, name).is_none());
    }

    fn txt(recorder: &Recorder) {
        assert!(ResolverCache::<Box<str>, Txt>::get::<str>(recorder, "spf.test.").is_none());
    }

    fn lookup(query: Query, answer: Option<bool>) -> Lookup {
        Lookup { query, answer }
    }

    #[test]
    fn the_name_asked_about_is_recovered_from_its_hash() {
        assert_eq!(name_of("void.example.org.").as_deref(), Some("void.example.org."));
        let boxed: Box<str> = "x.test.".into();
        assert_eq!(name_of(&boxed).as_deref(), Some("x.test."));
        assert_eq!(name_of(""), Some("".into()));
        // Not a name: an address key has no 0xff terminator.
        assert_eq!(name_of(&IpAddr::from([127, 0, 0, 1])), None);
    }

    #[test]
    fn queries_are_recorded_in_order_with_their_answers() {
        let recorder = Recorder::default();
        txt(&recorder);
        a(&recorder, "one.test.", Some(vec![Ipv4Addr::LOCALHOST]));
        a(&recorder, "two.test.", Some(vec![]));
        a(&recorder, "three.test.", None);
        exists(&recorder, "four.test.");
        a(&recorder, "five.test.", None);
        exists(&recorder, "five.test.");
        assert!(ResolverCache::<IpAddr, RecordSet<Box<str>>>::get(&recorder, &IpAddr::from([127, 0, 0, 1])).is_none());
        assert!(ResolverCache::<Box<str>, RecordSet<MX>>::get::<str>(&recorder, "mx.test.").is_none());
        ResolverCache::<Box<str>, RecordSet<MX>>::insert(&recorder, "mx.test.".into(), records(vec![]), Instant::now());
        assert_eq!(
            recorder.take(),
            [
                lookup(Query::Txt, None),
                lookup(Query::A("one.test.".into()), Some(true)),
                lookup(Query::A("two.test.".into()), Some(false)),
                lookup(Query::A("three.test.".into()), None),
                lookup(Query::Exists("four.test.".into()), None),
                // A failed `a` of a name, then an `exists` of the same name.
                lookup(Query::A("five.test.".into()), None),
                lookup(Query::Exists("five.test.".into()), None),
                lookup(Query::Ptr, None),
                lookup(Query::Mx("mx.test.".into()), Some(false)),
            ]
        );
        assert!(recorder.take().is_empty(), "taken once");
    }

    #[test]
    fn only_more_than_two_lookups_without_records_are_candidates() {
        let void = |name: &str| lookup(Query::A(name.into()), Some(false));
        let failed = |name: &str| lookup(Query::Exists(name.into()), None);
        let found = lookup(Query::A("found.test.".into()), Some(true));
        let txt = lookup(Query::Txt, None);

        let two = [txt.clone(), void("a."), found.clone(), failed("b."), found.clone()];
        assert!(candidates(&two, SpfResult::Neutral).is_empty(), "2 may be void: within the limit, nothing asked");

        let three = [txt.clone(), void("a."), found.clone(), failed("b."), void("c.")];
        assert_eq!(candidates(&three, SpfResult::Pass), [&three[1], &three[3], &three[4]]);
        assert!(candidates(&three, SpfResult::PermError).is_empty(), "already permerror");
        assert!(candidates(&three, SpfResult::None).is_empty());

        // temperror: the last query failed, not void; TXT queries never count.
        let temp = [void("a."), failed("b."), txt.clone(), failed("c.")];
        assert!(candidates(&temp, SpfResult::TempError).is_empty());
        let temp = [void("a."), failed("b."), failed("c."), txt];
        assert_eq!(candidates(&temp, SpfResult::TempError).len(), 3, "a failed include after 3 voids");
    }
}
