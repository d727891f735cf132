//! What the mail authentication tests need from outside smtpcell: an
//! authoritative DNS server on loopback serving a test zone
//! (`dns_zone.py`, python3-dnslib), DKIM keys and signatures made by two
//! independent signers, dkimpy (`dkim_tool.py`, python3-dkim) and OpenDKIM
//! (`opendkim-testmsg`), and dkimpy's verdict on a message against the same
//! zone. Debian's python3-* packages import only under /usr/bin/python3.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

const PYTHON: &str = "/usr/bin/python3";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("harness").join(name)
}

/// The DNS server of one test, stopped when dropped.
pub struct TestDns {
    pub port: u16,
    child: Child,
    /// Closing it ends the server.
    stdin: Option<ChildStdin>,
}

impl TestDns {
    /// Serves `zone` (lines of `NAME<TAB>TYPE<TAB>VALUE[<TAB>VALUE...]`,
    /// see dns_zone.py) on 127.0.0.1, UDP and TCP, on a free port.
    pub fn start(dir: &Path, zone: &str) -> Result<TestDns> {
        let path = dir.join("zone.tsv");
        std::fs::write(&path, zone)?;
        let mut child = Command::new(PYTHON)
            .arg(script("dns_zone.py"))
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting dns_zone.py (needs python3-dnslib)")?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let port = line.trim().strip_prefix("port ").with_context(|| format!("dns_zone.py said {line:?}"))?.parse()?;
        Ok(TestDns { port, child, stdin })
    }

    /// `127.0.0.1:PORT`, for `--dns-server`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The zone line of a TXT record, split into character-strings of at most
/// 255 octets (RFC 1035 section 3.3.14).
pub fn txt(name: &str, value: &str) -> String {
    let strings: Vec<&str> =
        value.as_bytes().chunks(255).map(|chunk| std::str::from_utf8(chunk).expect("ASCII record")).collect();
    format!("{name}\tTXT\t{}\n", strings.join("\t"))
}

/// A DKIM key pair: the private key's file and the public key record's
/// value (`v=DKIM1; k=...; p=...`).
pub struct DkimKey {
    pub private: PathBuf,
    pub record: String,
}

impl DkimKey {
    /// A 2048-bit RSA (`rsa`) or an Ed25519 (`ed25519`) key by dkimpy's
    /// dknewkey.
    pub fn dkimpy(dir: &Path, name: &str, ktype: &str) -> Result<DkimKey> {
        let base = dir.join(name);
        let out = Command::new("dknewkey").arg("--ktype").arg(ktype).arg(&base).output().context("dknewkey")?;
        ensure!(out.status.success(), "dknewkey: {}", String::from_utf8_lossy(&out.stderr));
        let record = std::fs::read_to_string(base.with_extension("dns"))?.trim().to_string();
        Ok(DkimKey { private: base.with_extension("key"), record })
    }

    /// A 2048-bit RSA key by opendkim-genkey. Its record is published
    /// without `h=sha256`: opendkim-testmsg signs with rsa-sha1.
    pub fn opendkim(dir: &Path, selector: &str, domain: &str) -> Result<DkimKey> {
        let out = Command::new("opendkim-genkey")
            .args(["-b", "2048", "-d", domain, "-s", selector, "-D"])
            .arg(dir)
            .output()
            .context("opendkim-genkey")?;
        ensure!(out.status.success(), "opendkim-genkey: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(dir.join(format!("{selector}.txt")))?;
        // `name IN TXT ( "part" "part" )`: the parts joined.
        let record: String = text.split('"').skip(1).step_by(2).collect();
        Ok(DkimKey { private: dir.join(format!("{selector}.private")), record: record.replace("h=sha256; ", "") })
    }
}

/// How dkimpy signs: header and body canonicalization, algorithm, `l=`.
#[derive(Clone, Copy, Debug)]
pub struct Signing {
    pub header: &'static str,
    pub body: &'static str,
    pub algorithm: &'static str,
    pub length: bool,
}

impl Signing {
    pub const RELAXED_SIMPLE: Signing =
        Signing { header: "relaxed", body: "simple", algorithm: "rsa-sha256", length: false };
    pub const RELAXED_RELAXED: Signing =
        Signing { header: "relaxed", body: "relaxed", algorithm: "rsa-sha256", length: false };
}

fn run(command: &mut Command, input: &[u8]) -> Result<Vec<u8>> {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    child.stdin.take().context("stdin")?.write_all(input)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// `message` with a DKIM-Signature by dkimpy on top.
pub fn dkimpy_sign(message: &[u8], selector: &str, domain: &str, key: &DkimKey, how: Signing) -> Result<Vec<u8>> {
    let mut command = Command::new(PYTHON);
    command.arg(script("dkim_tool.py")).args(["sign", selector, domain]).arg(&key.private).args([
        how.header,
        how.body,
        how.algorithm,
        if how.length { "l" } else { "-" },
    ]);
    let mut signed = run(&mut command, message)?;
    signed.extend_from_slice(message);
    Ok(signed)
}

/// `message` with an ARC set by dkimpy on top (`message` must carry an
/// Authentication-Results field of `authserv_id`).
pub fn dkimpy_arc_seal(
    message: &[u8],
    selector: &str,
    domain: &str,
    key: &DkimKey,
    authserv_id: &str,
) -> Result<Vec<u8>> {
    let mut command = Command::new(PYTHON);
    command.arg(script("dkim_tool.py")).args(["arc", selector, domain]).arg(&key.private).arg(authserv_id);
    let mut sealed = run(&mut command, message)?;
    sealed.extend_from_slice(message);
    Ok(sealed)
}

/// `message` signed by OpenDKIM's library (opendkim-testmsg: rsa-sha1,
/// relaxed/simple; the message needs From, Date and Message-ID).
pub fn opendkim_sign(message: &[u8], selector: &str, domain: &str, key: &DkimKey) -> Result<Vec<u8>> {
    let mut command = Command::new("opendkim-testmsg");
    command.args(["-C", "-d", domain, "-s", selector, "-k"]).arg(&key.private);
    let signed = run(&mut command, message)?;
    ensure!(signed.starts_with(b"DKIM-Signature:"), "opendkim-testmsg wrote {:?}", String::from_utf8_lossy(&signed));
    Ok(signed)
}

/// dkimpy's verdict on each DKIM-Signature of `message`, top first
/// (`pass` or `fail`), the keys looked up in the zone on `dns`.
pub fn dkimpy_verify(message: &[u8], dns: &TestDns) -> Result<Vec<String>> {
    let mut command = Command::new(PYTHON);
    command.arg(script("dkim_tool.py")).args(["verify", &dns.port.to_string()]);
    let out = run(&mut command, message)?;
    Ok(String::from_utf8(out)?.lines().map(String::from).collect())
}
