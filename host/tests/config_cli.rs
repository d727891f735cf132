//! The configuration file through the binary: `smtpcell config check`,
//! `serve --config` refusing a bad file before it binds anything, flags
//! over the file, and a reload of the file that is applied whole or
//! refused whole.

mod support;

use std::process::{Command, Stdio};

use support::*;

fn config_check(path: &std::path::Path) -> std::process::Output {
    Command::new(BIN).args(["config", "check"]).arg(path).env("RUST_BACKTRACE", "0").output().unwrap()
}

#[test]
fn config_check_accepts_a_good_file_and_summarises_it() {
    let dir = TempDir::new("cfgok");
    let recipients = dir.path().join("recipients");
    std::fs::write(&recipients, "alice@example.org alice@example.org\n@example.net catch@example.org\n").unwrap();
    let config = dir.path().join("smtpcell.toml");
    std::fs::write(
        &config,
        format!(
            "hostname = \"mx.example.org\"\ndomains = [\"example.org\", \"Example.NET\"]\n\
             recipients = {:?}\nmailboxes = {:?}\nrelay_networks = [\"192.0.2.0/24\"]\n\
             [rate_limits]\nclient_connections_per_minute = 60\n",
            recipients,
            dir.path().join("vmail")
        ),
    )
    .unwrap();
    let out = config_check(&config);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.starts_with("ok "), "{text}");
    for words in ["2 domains", "2 recipients", "relay networks", "rate limits on"] {
        assert!(text.contains(words), "{words:?} missing from {text}");
    }
    assert!(!dir.path().join("vmail").exists(), "config check created the mailboxes root");
}

#[test]
fn a_bad_file_is_refused_naming_file_line_and_key() {
    let dir = TempDir::new("cfgbad");
    let table = dir.path().join("table");
    std::fs::write(&table, "alice@example.org alice@example.org\nbob@elsewhere.test bob@example.org\n").unwrap();
    for (name, text, expected) in [
        ("unknown.toml", "hostname = \"mx\"\n\nmax_recipents = 5\n".to_string(), ":3: unknown field `max_recipents`"),
        ("type.toml", "max_recipients = \"many\"\n".to_string(), ":1: invalid type"),
        (
            "domain.toml",
            "hostname = \"mx\"\ndomains = [\"example.org\", \"[192.0.2.1]\"]\n".to_string(),
            ":2: domains:",
        ),
        ("network.toml", "relay_networks = [\"10.0.0.0/33\"]\n".to_string(), ":1: relay_networks:"),
        ("limits.toml", "[rate_limits]\nclient_conections_per_minute = 5\n".to_string(), ":2: unknown field"),
        (
            "table.toml",
            format!("domains = [\"example.org\"]\nrecipients = {table:?}\nmailboxes = \"/tmp/x\"\n"),
            "table:2:",
        ),
        (
            "nomailboxes.toml",
            format!("domains = [\"example.org\"]\nrecipients = {table:?}\n"),
            "recipients: needs mailboxes",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = config_check(&path);
        let err = stderr(&out);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(err.contains(expected), "{name}: {expected:?} not in {err}");
        // A table's own errors name the table's file and line instead.
        if name != "table.toml" {
            assert!(err.contains(name), "{name}: the file is not named in {err}");
        }
    }
    let missing = config_check(&dir.path().join("missing.toml"));
    assert!(!missing.status.success() && stderr(&missing).contains("missing.toml"), "{missing:?}");
}

#[test]
fn serve_does_not_start_with_a_bad_file() {
    let dir = TempDir::new("cfgserve");
    let config = dir.path().join("smtpcell.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--control")
        .arg(dir.path().join("control.sock"))
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("smtpcell.toml: listen_tls: needs tls_cert, tls_key and users"), "{err}");
    assert!(!dir.path().join("control.sock").exists());
}

#[test]
fn flags_override_the_file_and_a_reload_is_all_or_nothing() {
    let dir = TempDir::new("cfgreload");
    let recipients = dir.path().join("recipients");
    std::fs::write(&recipients, "alice@example.org alice@example.org\n").unwrap();
    let config = dir.path().join("smtpcell.toml");
    let write_config = |domains: &str| {
        std::fs::write(
            &config,
            format!(
                "hostname = \"file.test\"\nmax_recipients = 7\ndomains = [{domains}]\nrecipients = {recipients:?}\n\
                 mailboxes = {:?}\noutgoing = {:?}\n",
                dir.path().join("vmail"),
                dir.path().join("outgoing")
            ),
        )
        .unwrap()
    };
    write_config("\"example.org\"");
    let config_arg = config.to_str().unwrap();
    // serve_logging gives --hostname cli.test: the flag wins over the file.
    let server = serve_logging(&[], dir.path(), &["--config", config_arg], "info");
    let mut client = Client::greeted(server.addr);
    assert!(client.command("EHLO x").contains("cli.test"));
    client.expect("MAIL FROM:<a@b.test>", "250");
    client.expect("RCPT TO:<alice@example.org>", "250");
    client.expect("RCPT TO:<bob@example.org>", "550 5.1.1");
    client.expect("RCPT TO:<x@elsewhere.test>", "550 5.7.1");

    // bob is added and the table names a domain the file does not: the
    // reload is refused whole, and bob stays unknown.
    std::fs::write(
        &recipients,
        "alice@example.org alice@example.org\nbob@example.org bob@example.org\nc@other.test c@example.org\n",
    )
    .unwrap();
    let refused = server.control("reload");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(stderr(&refused).contains("nothing changed"), "{refused:?}");
    let mut during = Client::greeted(server.addr);
    during.expect("EHLO x", "250");
    during.expect("MAIL FROM:<a@b.test>", "250");
    during.expect("RCPT TO:<bob@example.org>", "550 5.1.1");

    // With the domain added too, it is applied: new connections know bob,
    // the connection from before keeps the policy it started with.
    write_config("\"example.org\", \"other.test\"");
    let applied = server.control("reload");
    assert!(applied.status.success(), "{applied:?}");
    assert!(stdout(&applied).contains("3 recipients"), "{applied:?}");
    client.expect("RCPT TO:<bob@example.org>", "550 5.1.1");
    let mut after = Client::greeted(server.addr);
    after.expect("EHLO x", "250");
    after.expect("MAIL FROM:<a@b.test>", "250");
    after.expect("RCPT TO:<bob@example.org>", "250");
    after.expect("RCPT TO:<c@other.test>", "250");
}

/// The fenced block of `lang` that follows `after` in the README.
fn readme_block(after: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let from = readme.find(after).unwrap_or_else(|| panic!("{after:?} is not in the README"));
    let open = format!("```{lang}\n");
    let start = readme[from..].find(&open).unwrap() + from + open.len();
    let end = readme[start..].find("```").unwrap() + start;
    readme[start..end].to_string()
}

#[test]
fn the_readme_example_configuration_checks() {
    let dir = TempDir::new("cfgreadme");
    let root = dir.path().to_str().unwrap();
    let local =
        |text: &str| text.replace("/etc/smtpcell/", &format!("{root}/etc/")).replace("/var/", &format!("{root}/var/"));
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    let config = dir.path().join("smtpcell.toml");
    std::fs::write(&config, local(&readme_block("An example, for `example.org`", "toml"))).unwrap();
    std::fs::write(dir.path().join("etc/recipients"), readme_block("and `/etc/smtpcell/recipients`:", "")).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["mx.example.org".to_string()]).unwrap();
    std::fs::write(dir.path().join("etc/fullchain.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.path().join("etc/privkey.pem"), certified.signing_key.serialize_pem()).unwrap();
    let mut passwd = Command::new(BIN)
        .args(["passwd", "--users"])
        .arg(dir.path().join("etc/users"))
        .arg("alice@example.org")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(passwd.stdin.as_mut().unwrap(), b"a password\n").unwrap();
    assert!(passwd.wait().unwrap().success());
    let out = config_check(&config);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for words in ["2 domains", "6 recipients", "1 users", "rate limits on", "greylisting on"] {
        assert!(text.contains(words), "{words:?} missing from {text}");
    }
}
