//! Mail authentication (issue 15) over real sockets: a server configured
//! from a file asks a DNS server on loopback (started and stopped here,
//! serving a test zone) about SPF, DKIM keys and DMARC policies; messages
//! are signed by two independent signers (dkimpy and OpenDKIM); every
//! result is read back from the stored Authentication-Results field, every
//! refusal from the SMTP reply; and for every message smtpcell's DKIM
//! verdicts equal dkimpy's against the same zone.

use std::net::IpAddr;
use std::sync::OnceLock;

use smtpcell::config::Options;
use smtpcell_tests::client::RawClient;
use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::dns::{DkimKey, Signing, TestDns, dkimpy_arc_seal, dkimpy_sign, dkimpy_verify, opendkim_sign, txt};
use smtpcell_tests::session::{greeted, loopback, status};
use smtpcell_tests::stored::copies;

const HOSTNAME: &str = "mx.test";

/// Every server here: one local domain, checks with a 2 s budget.
fn config(mail_auth: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nhostname = \"{HOSTNAME}\"\nmaildir = \"{{dir}}/inbox\"\n\
         domains = [\"mx.test\"]\nrelay_networks = [\"127.0.0.2/32\"]\n\n[mail_auth]\ntimeout_secs = 2\n{mail_auth}"
    )
}

/// The keys and the zone, made once for the whole file.
struct World {
    _dir: tempfile::TempDir,
    dns: TestDns,
    rsa: DkimKey,
    ed25519: DkimKey,
    opendkim: DkimKey,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rsa = DkimKey::dkimpy(dir.path(), "rsa", "rsa").unwrap();
        let ed25519 = DkimKey::dkimpy(dir.path(), "ed", "ed25519").unwrap();
        let opendkim = DkimKey::opendkim(dir.path(), "od", "pass.test").unwrap();
        assert!(rsa.record.len() > 255, "the 2048-bit key needs several TXT strings");
        let dns = TestDns::start(dir.path(), &zone(&rsa, &ed25519, &opendkim)).unwrap();
        World { _dir: dir, dns, rsa, ed25519, opendkim }
    })
}

fn zone(rsa: &DkimKey, ed25519: &DkimKey, opendkim: &DkimKey) -> String {
    let mut zone = String::new();
    // SPF: every result of RFC 7208 section 2.6 for a client on 127.0.0.1.
    zone += &txt("client.test", "v=spf1 ip4:127.0.0.0/8 -all");
    zone += &txt("pass.test", "v=spf1 ip4:127.0.0.1 -all");
    zone += &txt("fail.test", "v=spf1 ip4:192.0.2.1 -all");
    zone += &txt("softfail.test", "v=spf1 ip4:192.0.2.1 ~all");
    zone += &txt("neutral.test", "v=spf1 ?all");
    zone += "none.test\tA\t192.0.2.1\n";
    // 11 DNS-querying terms: one past RFC 7208 section 4.6.4's limit.
    let includes: Vec<String> = (1..=11).map(|n| format!("include:l{n}.test")).collect();
    zone += &txt("permerror.test", &format!("v=spf1 {} -all", includes.join(" ")));
    for n in 1..=11 {
        zone += &txt(&format!("l{n}.test"), "v=spf1 ip4:192.0.2.1 -all");
    }
    // Void lookups (RFC 7208 section 4.6.4): NXDOMAIN (nx*.void.test) or
    // no answers (nodata.void.test has a TXT record only). Each record's
    // ip4 term would pass the client if its evaluation got that far.
    let void_records = [
        ("nodata.void.test", "not an MX"),
        ("void2.test", "v=spf1 a:nx1.void.test mx:nodata.void.test ip4:127.0.0.1 -all"),
        ("void3.test", "v=spf1 a:nx1.void.test mx:nodata.void.test exists:nx2.void.test ip4:127.0.0.1 -all"),
        // The same void name three times, once in an include: the 2nd and
        // 3rd come from the resolver's cache and count all the same.
        ("void-repeat.test", "v=spf1 a:nx1.void.test include:void-inc.test ip4:127.0.0.1 -all"),
        ("void-inc.test", "v=spf1 a:nx1.void.test a:nx1.void.test -all"),
        // Two voids, then a server failure: temperror, the failure is no void.
        ("void-servfail.test", "v=spf1 a:nx1.void.test a:nx2.void.test a:x.servfail.test ip4:127.0.0.1 -all"),
    ];
    for (name, record) in void_records {
        zone += &txt(name, record);
    }
    // The include is asked of a server that never answers.
    zone += &txt("temperror.test", "v=spf1 include:x.blackhole.test -all");
    // DKIM keys: the 2048-bit RSA one split over several strings.
    zone += &txt("rsa._domainkey.pass.test", &rsa.record);
    zone += &txt("ed._domainkey.pass.test", &ed25519.record);
    zone += &txt("od._domainkey.pass.test", &opendkim.record);
    zone += &txt("arc._domainkey.relay.test", &rsa.record);
    // DMARC.
    zone += &txt("_dmarc.pass.test", "v=DMARC1; p=reject");
    zone += &txt("reject.test", "v=spf1 ip4:127.0.0.1 -all");
    zone += &txt("_dmarc.reject.test", "v=DMARC1; p=reject");
    zone += &txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine");
    zone += &txt("_dmarc.none.test", "v=DMARC1; p=none");
    zone += &txt("_dmarc.parent.test", "v=DMARC1; p=none; sp=reject");
    zone += "sub.parent.test\tA\t192.0.2.1\n";
    zone += "1.0.0.127.in-addr.arpa\tPTR\tclient.test\n";
    zone
}

fn start(mail_auth: &str) -> ConfiguredServer {
    let flags = Options { dns_server: Some(world().dns.addr().parse().unwrap()), ..Options::default() };
    ConfiguredServer::start_with(&config(mail_auth), &[], flags).unwrap()
}

/// A message from `from` (an address), with the fields signers need.
fn message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <user@mx.test>\r\nDate: Tue, 01 Dec 2026 07:00:00 +0000\r\n\
         Message-ID: <{subject}@test>\r\nSubject: {subject}\r\n\r\n{body}"
    )
    .into_bytes()
}

/// What one transaction got: the replies to MAIL and to the content.
struct Sent {
    mail: String,
    data: Option<String>,
}

/// One transaction from `source` (HELO client.test) to user@mx.test;
/// `content` must end in CRLF and have no line starting with a dot.
fn send(server: &ConfiguredServer, source: IpAddr, reverse_path: &str, content: &[u8]) -> Sent {
    let mut c: RawClient = greeted(server.addr, source).unwrap();
    let mail = c.command(&format!("MAIL FROM:<{reverse_path}>")).unwrap();
    if !mail.starts_with("250") {
        return Sent { mail, data: None };
    }
    assert!(c.command("RCPT TO:<user@mx.test>").unwrap().starts_with("250"));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    c.send(content).unwrap();
    let data = c.command(".").unwrap();
    let _ = c.command("QUIT");
    Sent { mail, data: Some(data) }
}

/// The stored copy whose Subject is `subject`: its Authentication-Results
/// value (unfolded), its Received-SPF value, and its content.
fn stored(server: &ConfiguredServer, subject: &str) -> Option<(String, String, String)> {
    let copy = copies(server.dir()).unwrap().into_iter().find(|c| c.subject() == Some(subject))?;
    let field = |name: &str| {
        let block = copy.header_block.replace("\r\n\t", " ").replace("\r\n ", " ");
        block.lines().find_map(|line| line.strip_prefix(&format!("{name}: ")).map(String::from)).unwrap_or_default()
    };
    Some((field("Authentication-Results"), field("Received-SPF"), copy.content.clone()))
}

/// The `method=result` words of an Authentication-Results value, in order.
fn results(value: &str, method: &str) -> Vec<String> {
    value
        .split(';')
        .filter_map(|part| part.trim().strip_prefix(&format!("{method}=")))
        .map(|rest| rest.split([' ', ';']).next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn spf_gives_every_result_and_refuses_only_where_configured() {
    let tagging = start("spf_fail = \"tag\"\ntemp_error = \"tag\"\n");
    let cases = [
        ("pass.test", "pass"),
        ("fail.test", "fail"),
        ("softfail.test", "softfail"),
        ("neutral.test", "neutral"),
        ("none.test", "none"),
        ("permerror.test", "permerror"),
        ("temperror.test", "temperror"),
        // RFC 7208 section 4.6.4's void lookups: 2 are allowed, a 3rd is
        // permerror (also when repeated from the resolver's cache), and a
        // server failure is temperror, not a void lookup.
        ("void2.test", "pass"),
        ("void3.test", "permerror"),
        ("void-repeat.test", "permerror"),
        ("void-servfail.test", "temperror"),
    ];
    for (domain, want) in cases {
        let subject = format!("spf-{domain}");
        let sent = send(&tagging, loopback(1), &format!("a@{domain}"), &message("x@mx.test", &subject, "hi\r\n"));
        assert!(sent.data.unwrap().starts_with("250 "), "{domain} is only tagged");
        let (ar, received_spf, _) = stored(&tagging, &subject).unwrap();
        assert!(ar.starts_with("mx.test;"), "{ar}");
        assert_eq!(results(&ar, "spf"), [want, "pass"], "{domain}: MAIL FROM, then HELO: {ar}");
        assert!(ar.contains(&format!("smtp.mailfrom=a@{domain}")), "{ar}");
        assert!(ar.contains("smtp.helo=client.test"), "{ar}");
        assert!(received_spf.to_lowercase().starts_with(want), "{domain}: {received_spf}");
        assert!(received_spf.contains("client-ip=127.0.0.1;"), "{received_spf}");
    }

    // An address literal or a single label cannot have an SPF record
    // (RFC 7208 section 4.3): "none" for HELO, and for the null
    // reverse-path, which is checked as postmaster@ the HELO domain.
    for (hello, reverse_path) in [("[127.0.0.1]", "a@pass.test"), ("localhost", ""), ("[127.0.0.1]", "")] {
        let subject = format!("spf-helo-{hello}-{reverse_path}");
        let mut c = RawClient::connect_from(loopback(1), tagging.addr).unwrap();
        assert!(c.reply().unwrap().starts_with("220 "));
        assert!(c.command(&format!("EHLO {hello}")).unwrap().starts_with("250"));
        assert!(c.command(&format!("MAIL FROM:<{reverse_path}>")).unwrap().starts_with("250"));
        assert!(c.command("RCPT TO:<user@mx.test>").unwrap().starts_with("250"));
        assert!(c.command("DATA").unwrap().starts_with("354"));
        c.send(&message("x@mx.test", &subject, "hi\r\n")).unwrap();
        assert!(c.command(".").unwrap().starts_with("250 "));
        let (ar, _, _) = stored(&tagging, &subject).unwrap();
        let mail_from = if reverse_path.is_empty() { "none" } else { "pass" };
        assert_eq!(results(&ar, "spf"), [mail_from, "none"], "HELO {hello}, MAIL FROM:<{reverse_path}>: {ar}");
    }

    let refusing = start("spf_fail = \"refuse\"\ntemp_error = \"refuse\"\n");
    for (domain, want) in
        [("fail.test", "550 5.7.23"), ("temperror.test", "451 4.7.24"), ("softfail.test", "250 2.1.0")]
    {
        let sent = send(&refusing, loopback(1), &format!("a@{domain}"), &message("x@mx.test", "refusing", "hi\r\n"));
        assert_eq!(status(&sent.mail), want, "{domain}: {}", sent.mail);
    }
}

#[test]
fn spf_permerror_from_void_lookups_is_only_tagged() {
    // RFC 7208 section 8.7 leaves permerror to local policy; ours tags it
    // even where fail and temperror are refused.
    let refusing = start("spf_fail = \"refuse\"\ntemp_error = \"refuse\"\n");
    let sent = send(&refusing, loopback(1), "a@void3.test", &message("x@mx.test", "void-refusing", "hi\r\n"));
    assert_eq!(status(&sent.mail), "250 2.1.0", "{}", sent.mail);
    assert_eq!(status(&sent.data.unwrap()), "250 2.0.0");
    let (ar, _, _) = stored(&refusing, "void-refusing").unwrap();
    assert_eq!(results(&ar, "spf"), ["permerror", "pass"], "{ar}");
    let sent = send(&refusing, loopback(1), "a@void-servfail.test", &message("x@mx.test", "servfail", "hi\r\n"));
    assert_eq!(status(&sent.mail), "451 4.7.24", "{}", sent.mail);
}

/// Subject, reverse-path, content, the expected reply to the content, and
/// the stored `dmarc=` and `policy.dmarc=` (`None`: refused, not stored).
type DmarcCase = (&'static str, &'static str, Vec<u8>, &'static str, Option<(&'static str, &'static str)>);

#[test]
fn dmarc_policies_with_aligned_and_unaligned_identifiers() {
    let w = world();
    let server = start("dmarc_reject = \"refuse\"\n");
    let signed_pass = |subject: &str| {
        dkimpy_sign(&message("a@pass.test", subject, "hi\r\n"), "rsa", "pass.test", &w.rsa, Signing::RELAXED_SIMPLE)
            .unwrap()
    };
    let cases: Vec<DmarcCase> = vec![
        ("unaligned-reject", "b@none.test", message("a@reject.test", "unaligned-reject", "hi\r\n"), "550 5.7.1", None),
        (
            "spf-aligned",
            "a@reject.test",
            message("a@reject.test", "spf-aligned", "hi\r\n"),
            "250 2.0.0",
            Some(("pass", "reject")),
        ),
        ("dkim-aligned", "b@none.test", signed_pass("dkim-aligned"), "250 2.0.0", Some(("pass", "reject"))),
        (
            "quarantine",
            "b@none.test",
            message("a@quarantine.test", "quarantine", "hi\r\n"),
            "250 2.0.0",
            Some(("fail", "quarantine")),
        ),
        ("p-none", "b@fail.test", message("a@none.test", "p-none", "hi\r\n"), "250 2.0.0", Some(("fail", "none"))),
        ("subdomain", "b@none.test", message("a@sub.parent.test", "subdomain", "hi\r\n"), "550 5.7.1", None),
        (
            "no-policy",
            "b@none.test",
            message("a@neutral.test", "no-policy", "hi\r\n"),
            "250 2.0.0",
            Some(("none", "none")),
        ),
    ];
    for (subject, reverse_path, content, want, dmarc) in cases {
        let sent = send(&server, loopback(1), reverse_path, &content);
        let reply = sent.data.unwrap();
        assert_eq!(status(&reply), want, "{subject}: {reply}");
        match dmarc {
            None => assert!(stored(&server, subject).is_none(), "{subject}: nothing stored"),
            Some((result, policy)) => {
                let (ar, _, _) = stored(&server, subject).unwrap();
                assert_eq!(results(&ar, "dmarc"), [result], "{subject}: {ar}");
                assert!(ar.contains(&format!("policy.dmarc={policy}")), "{subject}: {ar}");
            }
        }
    }

    // Tagged instead: p=reject is treated as quarantine, and said.
    let tagging = start("dmarc_reject = \"tag\"\n");
    let sent = send(&tagging, loopback(1), "b@none.test", &message("a@reject.test", "tagged-reject", "hi\r\n"));
    assert_eq!(status(&sent.data.unwrap()), "250 2.0.0");
    let (ar, _, _) = stored(&tagging, "tagged-reject").unwrap();
    assert_eq!(results(&ar, "dmarc"), ["fail"], "{ar}");
    assert!(ar.contains("policy.dmarc=reject"), "{ar}");
}

/// Signs `body` under `subject` the way `how` says.
fn dkimpy(subject: &str, body: &str, key: &DkimKey, selector: &str, how: Signing) -> Vec<u8> {
    dkimpy_sign(&message("a@pass.test", subject, body), selector, "pass.test", key, how).unwrap()
}

fn replace(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(message.to_vec()).unwrap().replacen(from, to, 1).into_bytes()
}

#[test]
fn dkim_by_independent_signers_matches_dkimpy_verdicts() {
    let w = world();
    let ed25519 = Signing { algorithm: "ed25519-sha256", ..Signing::RELAXED_RELAXED };
    let with_length = Signing { length: true, ..Signing::RELAXED_SIMPLE };
    let body = "Hello,  world \r\n\tindented line\r\n\r\n";
    let altered_body = replace(&dkimpy("altered-body", body, &w.rsa, "rsa", Signing::RELAXED_SIMPLE), "world", "w0rld");
    let altered_header =
        replace(&dkimpy("altered-header", body, &w.rsa, "rsa", Signing::RELAXED_SIMPLE), "To: <user@", "To: <other@");
    let mut appended = dkimpy("length", body, &w.rsa, "rsa", with_length);
    appended.extend_from_slice(b"Text appended after signing\r\n");
    let folded = {
        let content = message("a@pass.test", "folded", body);
        let content = replace(&content, "Subject: folded", "Subject: folded\r\n  over\r\n\tthree lines");
        dkimpy_sign(&content, "rsa", "pass.test", &w.rsa, Signing::RELAXED_RELAXED).unwrap()
    };
    let two = dkimpy_sign(
        &dkimpy("two-signatures", body, &w.ed25519, "ed", ed25519),
        "rsa",
        "pass.test",
        &w.rsa,
        Signing::RELAXED_SIMPLE,
    )
    .unwrap();
    let opendkim = opendkim_sign(&message("a@pass.test", "opendkim", body), "od", "pass.test", &w.opendkim).unwrap();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "rsa-relaxed-simple",
            dkimpy("rsa-relaxed-simple", body, &w.rsa, "rsa", Signing::RELAXED_SIMPLE),
            vec!["pass"],
        ),
        (
            "rsa-relaxed-relaxed",
            dkimpy("rsa-relaxed-relaxed", body, &w.rsa, "rsa", Signing::RELAXED_RELAXED),
            vec!["pass"],
        ),
        ("ed25519", dkimpy("ed25519", body, &w.ed25519, "ed", ed25519), vec!["pass"]),
        ("opendkim", opendkim, vec!["pass"]),
        ("altered-body", altered_body, vec!["fail"]),
        ("altered-header", altered_header, vec!["fail"]),
        ("length", appended, vec!["pass"]),
        // The case mail-auth 0.13's own canonicalization gets wrong.
        (
            "whitespace-line",
            dkimpy("whitespace-line", "text\r\n   \r\n\t\r\n", &w.rsa, "rsa", Signing::RELAXED_RELAXED),
            vec!["pass"],
        ),
        ("folded", folded, vec!["pass"]),
        ("two-signatures", two, vec!["pass", "pass"]),
        ("unsigned", message("a@pass.test", "unsigned", body), vec![]),
    ];
    let server = start("");
    for (subject, content, want) in cases {
        let dkimpy_says = dkimpy_verify(&content, &w.dns).unwrap();
        assert_eq!(dkimpy_says, want, "{subject}: dkimpy");
        let sent = send(&server, loopback(1), "a@pass.test", &content);
        assert_eq!(status(&sent.data.unwrap()), "250 2.0.0", "{subject}");
        let (ar, _, _) = stored(&server, subject).unwrap_or_else(|| panic!("{subject} not stored"));
        let ours: Vec<&str> = results(&ar, "dkim").iter().map(|r| if r == "pass" { "pass" } else { "fail" }).collect();
        let ours = if want.is_empty() { ours.into_iter().filter(|r| *r == "pass").collect() } else { ours };
        assert_eq!(ours, dkimpy_says, "{subject}: {ar}");
    }
}

#[test]
fn forged_results_are_removed_and_arc_is_reported() {
    let w = world();
    let server = start("");
    let forged = b"Authentication-Results: mx.test; dkim=pass header.d=pass.test\r\n\
        Authentication-Results: other.test; spf=pass smtp.mailfrom=x@other.test\r\n";
    let mut content = forged.to_vec();
    content.extend_from_slice(&message("a@none.test", "forged", "hi\r\n"));
    send(&server, loopback(1), "a@none.test", &content);
    let (ar, _, stored_content) = stored(&server, "forged").unwrap();
    assert!(!stored_content.contains("mx.test; dkim=pass"), "{stored_content}");
    assert!(stored_content.starts_with("Authentication-Results: other.test; spf=pass"), "{stored_content}");
    assert_eq!(results(&ar, "dkim"), ["none"], "{ar}");

    // A message relayed by relay.test, which checked it and sealed it.
    let checked = [
        &b"Authentication-Results: relay.test; spf=pass smtp.mailfrom=a@pass.test\r\n"[..],
        &message("a@pass.test", "arc", "hi\r\n"),
    ]
    .concat();
    let sealed = dkimpy_arc_seal(&checked, "arc", "relay.test", &w.rsa, "relay.test").unwrap();
    send(&server, loopback(1), "a@pass.test", &sealed);
    let (ar, _, _) = stored(&server, "arc").unwrap();
    assert_eq!(results(&ar, "arc"), ["pass"], "{ar}");
    // Broken by a change after the seal.
    let broken = replace(&sealed, "Subject: arc", "Subject: arc-broken");
    send(&server, loopback(1), "a@pass.test", &broken);
    let (ar, _, _) = stored(&server, "arc-broken").unwrap();
    assert_eq!(results(&ar, "arc"), ["fail"], "{ar}");
}

#[test]
fn relay_networks_and_authenticated_clients_are_not_checked() {
    let server = start("dmarc_reject = \"refuse\"\nspf_fail = \"refuse\"\n");
    let sent = send(&server, loopback(2), "b@fail.test", &message("a@reject.test", "from-relay", "hi\r\n"));
    assert_eq!(status(&sent.data.unwrap()), "250 2.0.0");
    let (ar, received_spf, _) = stored(&server, "from-relay").unwrap();
    assert_eq!((ar.as_str(), received_spf.as_str()), ("", ""), "no check, no field");
}

#[test]
fn no_mail_auth_turns_every_check_off() {
    let flags =
        Options { no_mail_auth: true, dns_server: Some(world().dns.addr().parse().unwrap()), ..Options::default() };
    let server = ConfiguredServer::start_with(&config("spf_fail = \"refuse\"\n"), &[], flags).unwrap();
    let sent = send(&server, loopback(1), "b@fail.test", &message("a@reject.test", "off", "hi\r\n"));
    assert_eq!(status(&sent.data.unwrap()), "250 2.0.0");
    assert_eq!(stored(&server, "off").unwrap().0, "");
}

#[test]
fn dns_errors_and_oversized_header_sections_at_the_end_of_data() {
    let deferring = start("temp_error = \"refuse\"\n");
    // The DMARC tree walk for the From domain asks a server that never answers.
    let sent = send(&deferring, loopback(1), "a@pass.test", &message("a@x.blackhole.test", "dmarc-temp", "hi\r\n"));
    assert_eq!(status(&sent.data.unwrap()), "451 4.7.1");
    assert!(stored(&deferring, "dmarc-temp").is_none());

    let tagging = start("");
    let sent =
        send(&tagging, loopback(1), "a@pass.test", &message("a@x.blackhole.test", "dmarc-temp-tagged", "hi\r\n"));
    assert_eq!(status(&sent.data.unwrap()), "250 2.0.0");
    let (ar, _, _) = stored(&tagging, "dmarc-temp-tagged").unwrap();
    assert_eq!(results(&ar, "dmarc"), ["temperror"], "{ar}");

    // Past 100 KiB of header section: neither verified nor cleaned, refused.
    let field = format!("X-Filler: {}\r\n", "f".repeat(980));
    let mut content = field.repeat(112).into_bytes();
    content.extend_from_slice(&message("a@pass.test", "huge-header", "hi\r\n"));
    let sent = send(&tagging, loopback(1), "a@pass.test", &content);
    assert_eq!(status(&sent.data.unwrap()), "550 5.7.1");
    assert!(stored(&tagging, "huge-header").is_none());
}

#[test]
fn a_reload_keeps_checking_and_applies_new_keys() {
    let server = start("spf_fail = \"tag\"\n");
    let sent = send(&server, loopback(1), "a@fail.test", &message("x@mx.test", "before-reload", "hi\r\n"));
    assert_eq!(status(&sent.data.unwrap()), "250 2.0.0");
    let report = server.reload();
    assert!(report.ok, "{:?}", report.lines);
    assert!(report.lines.iter().any(|l| l.starts_with("mail authentication on")), "{:?}", report.lines);
    let sent = send(&server, loopback(1), "a@pass.test", &message("x@mx.test", "after-reload", "hi\r\n"));
    assert_eq!(status(&sent.data.unwrap()), "250 2.0.0");
    assert_eq!(results(&stored(&server, "after-reload").unwrap().0, "spf"), ["pass", "pass"]);

    server.write("smtpcell.toml", &config("spf_fail = \"refuse\"\n"));
    assert!(server.reload().ok);
    let sent = send(&server, loopback(1), "a@fail.test", &message("x@mx.test", "refused-now", "hi\r\n"));
    assert_eq!(status(&sent.mail), "550 5.7.23");
}
