#!/usr/bin/python3
"""What mail authentication costs per message (issue 15): one smtpcell
binary with and without the checks, same run, interleaved reps.

Run with Debian's /usr/bin/python3 (python3-dnslib, python3-dkim, as the
tests). A DNS server on loopback (tests/harness/dns_zone.py) serves
bench.example: SPF `ip4:127.0.0.1 -all`, a DMARC `p=reject` record and a
2048-bit RSA DKIM key. Every message is the same 1 KiB one, signed by
dkimpy (rsa-sha256, relaxed/relaxed), From and MAIL FROM
bench@bench.example: SPF passes, DKIM passes, DMARC passes aligned. The
DNS cache is warm: each server gets WARMUP messages before it is measured.

Variants, each a fresh server on a fresh Maildir:
  plain      --no-mail-auth
  mail-auth  a configuration file with [mail_auth] defaults, --dns-server

Per run: CONNECTIONS clients (threads) each send MESSAGES messages over
one connection (workload b's shape: connections reused), then QUIT. Server
CPU is utime+stime from /proc/PID/stat around the measured part. Then,
per rep, mail-auth's CPU per message over plain's; the reps' median and
spread. --memory: one server per variant receives one 10 MiB signed
message; its peak RSS (VmHWM) is printed.

Usage: bench/mail_auth.py [--reps 5] [--messages 250] [--connections 4] [--memory]
Env: SMTPCELL (binary, default target/release/smtpcell), BENCH_WORK.
"""

import argparse
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))
import dkim  # noqa: E402
import load  # noqa: E402

DOMAIN = "bench.example"
WARMUP = 100


def zone_text(record):
    strings = [record[i:i + 255] for i in range(0, len(record), 255)]
    return "".join([
        "%s\tTXT\tv=spf1 ip4:127.0.0.1 -all\n" % DOMAIN,
        "_dmarc.%s\tTXT\tv=DMARC1; p=reject\n" % DOMAIN,
        "bench._domainkey.%s\tTXT\t%s\n" % (DOMAIN, "\t".join(strings)),
    ])


def signed_message(key, body_size):
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    body = line * (body_size // len(line) + 1)
    message = (b"From: <bench@bench.example>\r\nTo: <rcpt@bench.example>\r\n"
               b"Date: Tue, 01 Dec 2026 07:00:00 +0000\r\nMessage-ID: <bench@bench.example>\r\n"
               b"Subject: bench\r\n\r\n" + body)
    field = dkim.sign(message, b"bench", DOMAIN.encode(), key, canonicalize=(b"relaxed", b"relaxed"),
                      include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return field + message


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def send(port, message, count):
    with smtplib.SMTP(load.HOST, port, local_hostname="bench.example", timeout=120) as s:
        for _ in range(count):
            s.sendmail("bench@%s" % DOMAIN, ["rcpt@%s" % DOMAIN], message)


def server(variant, binary, dns_port, work):
    maildir = os.path.join(work, "%s-%d" % (variant, time.monotonic_ns()))
    # Room for the 10 MiB message of --memory (the default is 10,240,000).
    extra = ["--max-message-size", "33554432", "--no-mail-auth"]
    if variant == "mail-auth":
        config = os.path.join(maildir + ".toml")
        with open(config, "w") as f:
            f.write('domains = ["%s"]\noutgoing = "%s"\n\n[mail_auth]\n' % (DOMAIN, maildir + ".out"))
        extra = extra[:2] + ["--config", config, "--dns-server", "127.0.0.1:%d" % dns_port]

    def argv(port):
        return [binary, "serve", "--listen", "%s:%d" % (load.HOST, port), "--maildir", maildir, "--hostname",
                "mx.bench", "--no-cache", "--control", os.path.join(work, "%s-%d.sock" % (variant, port))] + extra
    return load.Server(variant, argv, dict(os.environ, SMTPCELL_LOG="warn"), maildir)


def run(variant, o, message, dns_port, work):
    target = server(variant, o.binary, dns_port, work)
    port = load.free_port()
    target.start(port)
    try:
        send(port, message, WARMUP)
        pid = target.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        threads = [threading.Thread(target=send, args=(port, message, o.messages)) for _ in range(o.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu, elapsed = cpu_seconds(pid) - cpu0, time.monotonic() - t0
        n = o.messages * o.connections
        stored = len(os.listdir(os.path.join(target.maildir, "new")))
        return dict(variant=variant, cpu_ms=1000 * cpu / n, rate=n / elapsed, stored=stored, sent=n + WARMUP,
                    hwm=peak_rss_mib(pid))
    finally:
        target.stop()


def memory(o, big, dns_port, work):
    """Each variant's peak RSS after one `big` message: the body is hashed
    as it streams (a whole-message verifier would hold it once more)."""
    print("\nOne %d MiB signed message, peak RSS of a fresh server (VmHWM)" % (len(big) >> 20))
    print("\n| variant | peak RSS MiB | stored | Authentication-Results |")
    print("|---------|-------------:|-------:|------------------------|")
    for variant in ("plain", "mail-auth"):
        target = server(variant, o.binary, dns_port, work)
        port = load.free_port()
        target.start(port)
        try:
            send(port, big, 1)
            hwm = peak_rss_mib(target.proc.pid)
            new = os.path.join(target.maildir, "new")
            files = os.listdir(new)
            with open(os.path.join(new, files[0]), "rb") as f:
                head = f.read(4096).decode(errors="replace")
            verdict = " ".join(w.strip(";") for w in head.split() if w.split("=")[0] in ("spf", "dkim", "dmarc"))
        finally:
            target.stop()
        print("| %s | %.1f | %d | %s |" % (variant, hwm, len(files), verdict or "(none)"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--messages", type=int, default=250, help="messages per connection")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--size", type=int, default=1024, help="body octets")
    ap.add_argument("--memory", action="store_true", help="also the 10 MiB message's peak RSS")
    ap.add_argument("--binary", default=load.SMTPCELL)
    o = ap.parse_args()
    o.binary = os.path.abspath(o.binary)
    work = tempfile.mkdtemp(prefix="mail-auth-bench-", dir=os.environ.get("BENCH_WORK"))
    keydir = os.path.join(work, "key")
    os.makedirs(keydir)
    subprocess.run(["dknewkey", "--ktype", "rsa", os.path.join(keydir, "bench")], check=True, capture_output=True)
    with open(os.path.join(keydir, "bench.key"), "rb") as f:
        key = f.read()
    with open(os.path.join(keydir, "bench.dns")) as f:
        record = f.read().strip()
    zone = os.path.join(work, "zone.tsv")
    with open(zone, "w") as f:
        f.write(zone_text(record))
    dns = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "..", "tests", "harness", "dns_zone.py"), zone],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    dns_port = int(dns.stdout.readline().split()[1])
    try:
        message = signed_message(key, o.size)
        print("smtpcell mail authentication cost: %d connections x %d messages of %d octets, after %d warm-up"
              % (o.connections, o.messages, len(message), WARMUP))
        print("  " + load.machine())
        print("  binary: %s" % o.binary)
        print("  command: bench/mail_auth.py %s" % " ".join(sys.argv[1:]))
        results = []
        variants = ["plain", "mail-auth"]
        for rep in range(o.reps):
            for variant in variants[rep % 2:] + variants[:rep % 2]:
                r = run(variant, o, message, dns_port, work)
                r["rep"] = rep
                results.append(r)
        print("\n| variant | msg/s | server CPU ms/msg | peak RSS MiB | sent | stored |")
        print("|---------|------:|------------------:|-------------:|-----:|-------:|")
        for variant in variants:
            rs = [r for r in results if r["variant"] == variant]
            print("| %s | %.0f | %.3f (%s) | %.1f | %d | %d |" % (
                variant, statistics.median(r["rate"] for r in rs), statistics.median(r["cpu_ms"] for r in rs),
                ", ".join("%.3f" % r["cpu_ms"] for r in rs), statistics.median(r["hwm"] for r in rs),
                sum(r["sent"] for r in rs), sum(r["stored"] for r in rs)))
        ratios, extra = [], []
        for rep in range(o.reps):
            a = next(r for r in results if r["rep"] == rep and r["variant"] == "mail-auth")
            b = next(r for r in results if r["rep"] == rep and r["variant"] == "plain")
            ratios.append(a["cpu_ms"] / b["cpu_ms"])
            extra.append(a["cpu_ms"] - b["cpu_ms"])
        print("\nmail-auth's server CPU per message over plain's in the same rep: median %.2f [%.2f, %.2f];"
              " extra %.3f ms per message (median of the reps' differences)"
              % (statistics.median(ratios), min(ratios), max(ratios), statistics.median(extra)))
        if o.memory:
            memory(o, signed_message(key, 10 << 20), dns_port, work)
    finally:
        dns.stdin.close()
        dns.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
