#!/usr/bin/env python3
"""STARTTLS against plaintext, same generator, same run: bench/tls-source against SMTP servers.

Load generator: bench/tls-source (build it first:
`cargo build --release --manifest-path bench/tls-source/Cargo.toml`), which takes
smtp-source's flags and speaks plain SMTP, STARTTLS or implicit TLS. Every workload,
plaintext or not, goes through it, so the TLS cost is the difference between rows.

Workloads (one command per round trip, no pipelining, sender bench@bench.example):
  a    -s 20 -m 5000 -l 1024                  1 KiB, 20 sessions, one message per connection
  b    -s 20 -m 5000 -l 1024 -d               the same, connections reused
  ta   --starttls -s 20 -m 5000 -l 1024       a over STARTTLS: one full TLS handshake per message
  tb   --starttls -s 20 -m 5000 -l 1024 -d    b over STARTTLS: 20 handshakes in all

Targets (positional, in the order the table compares them; the first is the baseline of the ratios):
  smtpcell                       target/release/smtpcell (or $SMTPCELL)
  NAME=PATH                      another smtpcell binary (before/after A/B)
  name=NAME[,port=PORT],cmd=CMD  any server; `cmd` last (it may contain commas). Run as
                                 `/bin/sh -c "exec CMD"` with PEER_HOST, PEER_PORT (a free port unless
                                 given), PEER_STORE (a fresh empty directory per run), PEER_TLS_CERT and
                                 PEER_TLS_KEY in its environment; it must listen on 127.0.0.1:PEER_PORT,
                                 print a 220 banner, offer STARTTLS with that certificate, and stop on
                                 SIGTERM. Stored messages are counted in PEER_STORE (new/ + cur/, or all
                                 files when there is no new/) and must equal the acknowledged count.

smtpcell targets run `PATH serve --listen 127.0.0.1:PORT --maildir STORE --hostname bench.localhost
--no-cache --control SOCK --tls-cert CERT --tls-key KEY`.

The certificate is made for the run (`openssl req -x509 -newkey ec -pkeyopt
ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost`) in a temporary directory, removed at
the end. As in bench/load.py: for every (workload, target) a fresh server process on a fresh store,
a 200-message warm-up with the workload's own flags, `sync`, then the run; server CPU is
utime+stime of the server's PID (/proc/PID/stat) per 1,000 messages, peak RSS its VmHWM; Maildirs
of earlier runs are deleted first and the run waits until ext4 creates files cheaply again.
Figures: msg/s and handshakes/s from tls-source --stats (its wall time), server and client CPU.

Usage: bench/tls.py [--workloads a,ta,b,tb] [--reps N] [--scale F] [--source PATH] [TARGET...]
Env: SMTPCELL, BENCH_WORK (default /tmp/smtpcell-bench), as bench/load.py.
"""

import argparse
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (bench/load.py: server start/stop, CPU, RSS, Maildir clean-up)

ROOT = load.ROOT
SOURCE = os.path.join(ROOT, "bench", "tls-source", "target", "release", "tls-source")
HOST = load.HOST

WORKLOADS = {
    "a": ["-s", "20", "-m", "5000", "-l", "1024"],
    "b": ["-s", "20", "-m", "5000", "-l", "1024", "-d"],
    "ta": ["--starttls", "-s", "20", "-m", "5000", "-l", "1024"],
    "tb": ["--starttls", "-s", "20", "-m", "5000", "-l", "1024", "-d"],
}
SRC_COMMON = ["-f", "bench@bench.example", "-t", "rcpt@bench.example", "-M", "bench.localhost"]
# The plaintext twin of each TLS workload, for the TLS-cost ratios.
PLAIN_OF = {"ta": "a", "tb": "b"}


def log(*a):
    print("[tls]", *a, file=sys.stderr, flush=True)


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def parse_target(t):
    """name=N[,port=P],cmd=C | NAME=PATH | smtpcell -> dict(name, port, cmd or binary)."""
    if "cmd=" in t:
        head, _, cmd = t.partition("cmd=")
        spec = dict(kv.split("=", 1) for kv in head.strip(",").split(",") if kv)
        if "name" not in spec:
            raise SystemExit("target %r has no name=" % t)
        return dict(name=spec["name"], port=int(spec["port"]) if spec.get("port") else None, cmd=cmd)
    if t == "smtpcell":
        return dict(name="smtpcell", port=None, binary=load.SMTPCELL)
    name, eq, path = t.partition("=")
    if not eq or not path:
        raise SystemExit("target %r: want smtpcell, NAME=PATH or name=...,cmd=..." % t)
    return dict(name=name, port=None, binary=os.path.abspath(path))


class Target(load.Server):
    """One server process on a fresh store (load.Server: start, banner wait, SIGTERM stop)."""

    def __init__(self, spec, cert, key):
        self.spec = spec
        self.store = os.path.join(load.WORK, "maildir", load.RUN_ID, "%s-%d" % (spec["name"], time.monotonic_ns()))
        os.makedirs(self.store)
        env = dict(os.environ, PEER_HOST=HOST, PEER_STORE=self.store, PEER_TLS_CERT=cert, PEER_TLS_KEY=key,
                   SMTPCELL_LOG=os.environ.get("SMTPCELL_LOG", "warn"))
        super().__init__(spec["name"], self.argv_for, env, None)
        self.cert, self.key = cert, key

    def argv_for(self, port):
        # load.Server.start calls this before it reads self.env for Popen.
        self.env["PEER_PORT"] = str(port)
        if "cmd" in self.spec:
            return ["/bin/sh", "-c", "exec " + self.spec["cmd"]]
        sock = os.path.join(load.WORK, "%s-%d.sock" % (self.name, port))
        return [self.spec["binary"], "serve", "--listen", "%s:%d" % (HOST, port), "--maildir", self.store,
                "--hostname", "bench.localhost", "--no-cache", "--control", sock,
                "--tls-cert", self.cert, "--tls-key", self.key] + load.no_mail_auth(self.spec["binary"])

    def stored(self):
        new = os.path.join(self.store, "new")
        if os.path.isdir(new):
            return len(os.listdir(new)) + len(os.listdir(os.path.join(self.store, "cur")))
        return sum(len(files) for _root, _dirs, files in os.walk(self.store))


def tls_source(source, args, port, cap):
    """Runs the generator; returns its --stats fields (plus rc and stderr's tail)."""
    argv = [source] + args + ["-c", "--stats"] + SRC_COMMON + ["%s:%d" % (HOST, port)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=cap)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)  # it prints what it has and stops
        out, err = p.communicate()
    stats = {}
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("handshakes="):
            stats = {k: float(v) for k, v in (kv.split("=", 1) for kv in line.split())}
    if not stats:
        raise SystemExit("no --stats line from %s (rc %d): %s" % (" ".join(argv), p.returncode, err.decode()[-500:]))
    stats.update(rc=p.returncode, err=err.decode(errors="replace").strip())
    return stats


def scaled(args, scale):
    out = list(args)
    i = out.index("-m")
    out[i + 1] = str(max(20, int(int(out[i + 1]) * scale)))
    return out


def run_one(spec, wl, args, o, cert, key):
    t = Target(spec, cert, key)
    t.start(spec["port"] or load.free_port())
    try:
        warm = list(args)
        warm[warm.index("-m") + 1] = "200"  # the workload's own flags, 200 messages
        w = tls_source(o.source, warm, t.port, o.cap)
        if w["rc"] != 0:
            log("%s %s warm-up failed: %s" % (t.name, wl, w["err"][-300:]))
        before = t.stored()
        subprocess.run(["sync"])
        time.sleep(0.3)
        pid = t.proc.pid
        cpu0 = load.cpu_seconds(pid)
        s = tls_source(o.source, args, t.port, o.cap)
        cpu1 = load.cpu_seconds(pid)
        hwm = load.status_kib(pid, "VmHWM") / 1024.0
        time.sleep(0.2)  # a late file would show as a mismatch
        stored = t.stored() - before
    finally:
        t.stop()
    acked = int(s["messages"])
    r = dict(target=t.name, wl=wl, acked=acked, rate=s["messages_per_s"], hs=s["handshakes_per_s"],
             cpu1k=(cpu1 - cpu0) * 1000.0 / acked if acked else None,
             cli1k=s["client_cpu_s"] * 1000.0 / acked if acked else None, hwm=hwm, stored=stored, rc=s["rc"])
    log("%-10s %-2s %5d acked in %6.2f s = %7.1f msg/s, %7.1f handshakes/s, server cpu/1k %s, client cpu/1k %s, "
        "hwm %.1f MiB, stored %d%s" % (t.name, wl, acked, s["seconds"], r["rate"], r["hs"], fmt(r["cpu1k"], 3),
                                       fmt(r["cli1k"], 3), hwm, stored,
                                       "" if s["rc"] == 0 else ", tls-source rc %d: %s" % (s["rc"], s["err"][-300:])))
    return r


def fmt(x, digits=0):
    return "n/a" if x is None else "%.*f" % (digits, x)


def med(rs, key):
    xs = [r[key] for r in rs if r[key] is not None]
    return statistics.median(xs) if xs else None


def cell(rs, key, digits):
    m = med(rs, key)
    if len(rs) == 1:
        return fmt(m, digits)
    return "%s (%s)" % (fmt(m, digits), ", ".join(fmt(r[key], digits) for r in rs))


def ratio(x, y):
    return "%.2f" % (x / y) if x is not None and y else "-"


def report(results, wls, names, o):
    print("\nSTARTTLS vs plaintext, generator bench/tls-source (same run)")
    print("  " + load.machine())
    print("  command: %s" % " ".join(["bench/tls.py"] + [shlex.quote(a) for a in sys.argv[1:]]))
    for w in wls:
        print("  %s: tls-source %s -c --stats %s 127.0.0.1:PORT" % (w, " ".join(scaled(WORKLOADS[w], o.scale)),
                                                                   " ".join(SRC_COMMON)))
    if o.reps > 1:
        print("  %d reps, targets interleaved; median first, every rep in brackets" % o.reps)
    print()
    print("| wl | target | msg/s | handshakes/s | server CPU s/1k msgs | client CPU s/1k | peak RSS MiB | acked | stored |")
    print("|----|--------|------:|-------------:|---------------------:|----------------:|-------------:|------:|-------:|")
    for w in wls:
        for n in names:
            rs = [r for r in results if r["wl"] == w and r["target"] == n]
            ok = all(r["stored"] == r["acked"] for r in rs)
            print("| %s | %s | %s | %s | %s | %s | %s | %d | %s |" % (
                w, n, cell(rs, "rate", 0), cell(rs, "hs", 0) if w in PLAIN_OF else "-", cell(rs, "cpu1k", 3),
                cell(rs, "cli1k", 3), cell(rs, "hwm", 1), sum(r["acked"] for r in rs),
                "all" if ok else "MISMATCH " + ",".join(str(r["stored"]) for r in rs)))
    if len(names) > 1:
        base = names[0]
        print("\nRatios to %s, same workload (medians): msg/s, server CPU per message" % base)
        print()
        print("| wl | target | msg/s x %s | server CPU x %s |" % (base, base))
        print("|----|--------|------:|------:|")
        for w in wls:
            b = [r for r in results if r["wl"] == w and r["target"] == base]
            for n in names[1:]:
                rs = [r for r in results if r["wl"] == w and r["target"] == n]
                print("| %s | %s | %s | %s |" % (w, n, ratio(med(rs, "rate"), med(b, "rate")),
                                                ratio(med(rs, "cpu1k"), med(b, "cpu1k"))))
    pairs = [(t, p) for t, p in PLAIN_OF.items() if t in wls and p in wls]
    if pairs:
        print("\nTLS cost per target (medians): STARTTLS workload / its plaintext twin")
        print()
        print("| target | workloads | msg/s ratio | server CPU per message ratio | server CPU ms per message, extra |")
        print("|--------|-----------|------:|------:|------:|")
        for n in names:
            for t, p in pairs:
                rt = [r for r in results if r["wl"] == t and r["target"] == n]
                rp = [r for r in results if r["wl"] == p and r["target"] == n]
                ct, cp = med(rt, "cpu1k"), med(rp, "cpu1k")
                extra = "%.3f" % (ct - cp) if ct is not None and cp is not None else "-"
                print("| %s | %s / %s | %s | %s | %s |" % (n, t, p, ratio(med(rt, "rate"), med(rp, "rate")),
                                                          ratio(ct, cp), extra))
    bad = [r for r in results if r["stored"] != r["acked"] or r["rc"] != 0]
    if bad:
        print("\nERROR: runs with failed messages or acknowledged messages missing from the store: %r" % bad)
    return not bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", default=["smtpcell"])
    ap.add_argument("--workloads", default="a,ta,b,tb")
    ap.add_argument("--reps", type=int, default=1, help="repeat every (workload, target), targets interleaved")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply message counts (quick runs)")
    ap.add_argument("--cap", type=float, default=300.0, help="max seconds per generator run (then SIGTERM)")
    ap.add_argument("--source", default=SOURCE, help="the tls-source binary")
    o = ap.parse_args()
    if not os.path.exists(o.source):
        raise SystemExit("%s missing: cargo build --release --manifest-path bench/tls-source/Cargo.toml" % o.source)
    wls = o.workloads.split(",")
    for w in wls:
        if w not in WORKLOADS:
            raise SystemExit("unknown workload %s (have %s)" % (w, ", ".join(WORKLOADS)))
    specs = [parse_target(t) for t in o.targets]
    names = []
    for s in specs:
        if "binary" in s and not os.path.exists(s["binary"]):
            raise SystemExit("%s missing: cargo build --release -p smtpcell" % s["binary"])
        if s["name"] not in names:
            names.append(s["name"])
    load.clean_maildirs(wait=True)
    tmp = tempfile.mkdtemp(prefix="smtpcell-tls-")
    try:
        cert, key = make_cert(tmp)
        results = []
        for _rep in range(o.reps):
            for w in wls:
                for s in specs:
                    results.append(run_one(s, w, scaled(WORKLOADS[w], o.scale), o, cert, key))
        ok = report(results, wls, names, o)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("stores of this run kept under %s (removed by the next run, before it waits)"
        % os.path.join(load.WORK, "maildir"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
