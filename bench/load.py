#!/usr/bin/env python3
"""End-to-end load runs for smtpcell, next to Postfix's smtp-sink in the same run.

Load generator and no-storage reference: Postfix's smtp-source and smtp-sink,
taken from Debian's postfix package WITHOUT installing the MTA
(`apt-get download postfix`, `dpkg -x` into $BENCH_WORK/postfix; they run with
LD_LIBRARY_PATH pointing at the package's own libpostfix-*.so).

Workloads (smtp-source, one command per round trip, no pipelining):
  a  -c -s 20 -m 5000 -l 1024          1 KiB, 20 sessions, one message per connection
  b  -c -s 20 -m 5000 -l 1024 -d       the same, connections reused
  c  -c -s 20 -m 1000 -l 102400        100 KiB, 20 sessions, one message per connection

For every (target, workload): a fresh server process on a fresh Maildir, a
200-message warm-up, `sync`, then the run. Figures:
  msg/s   messages acknowledged (smtp-source's -c counter) / wall time
  cpu/1k  server CPU seconds (utime+stime of /proc/PID/stat) per 1,000 messages
  hwm     server peak RSS (VmHWM of /proc/PID/status), MiB
  x sink  the ratio to smtp-sink in the same run
  stored  smtpcell only: files in new/ (Maildir), or rows of smtpcell_message
          (PostgreSQL) == acknowledged (checked, not assumed)
  pg cpu/1k  PostgreSQL only: the cluster's CPU seconds (postmaster and all its
          processes, exited ones included) per 1,000 messages

Stores (--store maildir,postgres) and hosts (--hosts 1,2): every `smtpcell`
target runs once per store and host count. `postgres` starts its own cluster
(Debian's PostgreSQL: initdb into $BENCH_WORK/pg, loopback, fsync and
synchronous_commit on, as the postgres user when run as root), fresh per run.
With 2 hosts, two smtpcell processes on two ports share the store's cluster
(Maildir: each its own Maildir) and two smtp-source processes run at once,
each with half the sessions and half the messages; msg/s is all their
acknowledgements over the longer of the two, CPU is both servers'.

Idle run (--idle N,N...): N connections opened, each reads the banner, sends
EHLO, reads the reply, and is held; then the server's VmRSS is read.

Usage: bench/load.py [--workloads a,b,c] [--store maildir,postgres] [--hosts 1,2] [--scale F]
                    [--idle 1000,10000] [--no-load]
Env: SMTPCELL (binary, default target/release/smtpcell), BENCH_WORK (default /tmp/smtpcell-bench).
"""

import argparse
import asyncio
import datetime
import glob
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import pgcluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.environ.get("BENCH_WORK", "/tmp/smtpcell-bench")
SMTPCELL = os.environ.get("SMTPCELL", os.path.join(ROOT, "target", "release", "smtpcell"))
HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")

WORKLOADS = {
    "a": ["-c", "-s", "20", "-m", "5000", "-l", "1024"],
    "b": ["-c", "-s", "20", "-m", "5000", "-l", "1024", "-d"],
    "c": ["-c", "-s", "20", "-m", "1000", "-l", "102400"],
}
SRC_COMMON = ["-f", "bench@bench.example", "-t", "rcpt@bench.example", "-M", "bench.localhost"]


def log(*a):
    print("[load]", *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------ postfix tools
def postfix_tools():
    """smtp-source and smtp-sink from the Debian package, unpacked, not installed."""
    root = os.path.join(WORK, "postfix")
    src = os.path.join(root, "usr", "sbin", "smtp-source")
    if not os.path.exists(src):
        os.makedirs(WORK, exist_ok=True)
        log("fetching postfix .deb (apt-get download) and unpacking it into", root)
        for deb in glob.glob(os.path.join(WORK, "postfix_*.deb")):
            os.unlink(deb)
        subprocess.run(["apt-get", "download", "postfix"], cwd=WORK, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deb = glob.glob(os.path.join(WORK, "postfix_*.deb"))[0]
        subprocess.run(["dpkg", "-x", deb, root], check=True)
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(root, "usr", "lib", "postfix"))
    missing = subprocess.run(["ldd", src], env=env, capture_output=True, text=True).stdout
    if "not found" in missing:
        raise SystemExit("smtp-source needs libraries that are missing:\n" + missing)
    return src, os.path.join(root, "usr", "sbin", "smtp-sink"), env


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_banner(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server on port %d exited (%s) during start-up" % (port, proc.returncode))
        try:
            with socket.create_connection((HOST, port), timeout=5) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("no banner on port %d" % port)


def cpu_split(pid):
    """(user, system) CPU seconds of process `pid` (utime, stime)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_seconds(pid):
    return sum(cpu_split(pid))


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ------------------------------------------------------------------ targets
class Server:
    def __init__(self, name, argv, env, maildir=None):
        self.name, self.argv, self.env, self.maildir = name, argv, env, maildir
        self.proc = None

    def start(self, port):
        self.port = port
        os.makedirs(os.path.join(WORK, "logs"), exist_ok=True)
        self.logf = open(os.path.join(WORK, "logs", "%s.log" % self.name), "ab")
        self.proc = subprocess.Popen(self.argv(port), env=self.env, stdout=self.logf, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile, start_new_session=True)
        wait_banner(port, self.proc)

    def stored(self):
        if not self.maildir:
            return None
        return len(os.listdir(os.path.join(self.maildir, "new")))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


RUN_ID = "%d-%d" % (int(time.time()), os.getpid())


class Hosts:
    """One or more smtpcell servers measured as one target (several hosts on
    one store), and the PostgreSQL cluster they store into, if any."""

    def __init__(self, name, servers, cluster=None):
        self.name, self.servers, self.cluster = name, servers, cluster

    def start(self):
        if self.cluster:
            self.cluster.start()
        for server in self.servers:
            server.start(free_port())

    def ports(self):
        return [server.port for server in self.servers]

    def cpu_split(self):
        """(user, system) CPU seconds of all the servers."""
        splits = [cpu_split(server.proc.pid) for server in self.servers]
        return sum(u for u, _ in splits), sum(s for _, s in splits)

    def hwm(self):
        return max(status_kib(server.proc.pid, "VmHWM") for server in self.servers)

    def stored(self):
        if self.cluster:
            return int(self.cluster.psql("SELECT count(*) FROM smtpcell_message"))
        counts = [server.stored() for server in self.servers]
        return None if None in counts else sum(counts)

    def stop(self):
        for server in self.servers:
            server.stop()
        if self.cluster:
            self.cluster.remove()


def no_mail_auth(binary):
    """`--no-mail-auth` for a binary that has mail authentication (issue 15;
    on by default, it would ask the DNS about every message): these benches
    measure the server without it, as before it existed; bench/mail_auth.py
    measures it."""
    help_text = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout
    return ["--no-mail-auth"] if "--no-mail-auth" in help_text else []


def smtpcell_hosts(store, hosts, name="smtpcell", binary=None):
    """`hosts` smtpcell servers on `store` (maildir: each its own; postgres:
    one fresh cluster for all), measured together."""
    label = name + ("-pg" if store == "postgres" else "") + (" x%d" % hosts if hosts > 1 else "")
    cluster = pgcluster.Cluster(os.path.join(WORK, "pg")) if store == "postgres" else None
    servers = []
    for i in range(hosts):
        server_name = "%s-%s-%d" % (name, store, i)
        if cluster:
            servers.append(smtpcell_target(server_name, ["--store", cluster.url], binary, maildir=False))
        else:
            servers.append(smtpcell_target(server_name, binary=binary))
    return Hosts(label, servers, cluster)


def smtpcell_target(name="smtpcell", extra=(), binary=None, maildir=True, under=None):
    # A fresh Maildir per run, never one deleted just before: on ext4 without
    # a journal (this VM's disk), inode allocation scans past every recently
    # freed inode (`recently_deleted`), so deleting 5,000 files right before a
    # run makes each new file cost a long kernel scan. All the run's Maildirs
    # are removed by the next run, which then waits (clean_maildirs). `under`
    # (a fresh filesystem, see fresh_fs.py) replaces the work disk's
    # $BENCH_WORK/maildir/RUN_ID.
    root = under or os.path.join(WORK, "maildir", RUN_ID)
    maildir = os.path.join(root, "%s-%d" % (name, time.monotonic_ns())) if maildir else None
    storage = ["--maildir", maildir] if maildir else []

    NO_MAIL_AUTH = no_mail_auth(binary or SMTPCELL)

    def argv(port):
        return [binary or SMTPCELL, "--listen", "%s:%d" % (HOST, port)] + storage + ["--hostname", "bench.localhost",
                "--no-cache", "--control", os.path.join(WORK, "%s-%d.sock" % (name, port))] + NO_MAIL_AUTH + list(extra)
    return Server(name, argv, dict(os.environ, SMTPCELL_LOG=os.environ.get("SMTPCELL_LOG", "warn")), maildir)


def sink_target(sink, env):
    def argv(port):
        return [sink, "-c", "-u", "nobody", "%s:%d" % (HOST, port), "1024"]
    return Server("smtp-sink", argv, env)


# ------------------------------------------------------------------ running
def smtp_source(source, env, args, ports):
    """smtp-source against every port at once, the sessions (-s) and messages
    (-m) split between them; (acknowledged in all, wall time of the slowest)."""
    shares = []
    for i, port in enumerate(ports):
        share = list(args)
        for flag in ("-s", "-m"):
            at = share.index(flag) + 1
            total = int(share[at])
            share[at] = str(total // len(ports) + (1 if i < total % len(ports) else 0))
        shares.append([source] + share + SRC_COMMON + ["%s:%d" % (HOST, port)])
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for argv in shares]
    acked = 0
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            log("smtp-source exited %d: %s" % (p.returncode, err.decode(errors="replace")[-300:]))
        acked += acknowledged(out)
    return acked, time.monotonic() - t0


def acknowledged(output):
    """The last of the running counts smtp-source -c prints (each ends in
    a carriage return): the messages it had acknowledged."""
    nums = re.findall(rb"(\d+)\r", output)
    return int(nums[-1]) if nums else 0


# 200 messages before every measured run.
WARM_UP = ["-c", "-s", "20", "-m", "200", "-l", "1024"]


def per_1k(cpu0, cpu1, messages):
    """Server CPU seconds per 1,000 messages between two (user, system)
    readings: the whole, and its user and system parts (None without
    messages)."""
    (user0, sys0), (user1, sys1) = cpu0, cpu1
    if not messages:
        return dict(cpu1k=None, user1k=None, sys1k=None)
    return dict(cpu1k=(user1 + sys1 - user0 - sys0) * 1000.0 / messages,
                user1k=(user1 - user0) * 1000.0 / messages, sys1k=(sys1 - sys0) * 1000.0 / messages)


def scaled(args, scale):
    out = list(args)
    i = out.index("-m")
    out[i + 1] = str(max(20, int(int(out[i + 1]) * scale)))
    return out


def run_one(target, wl, args, source, env):
    """Warm-up, then the workload `args` against `target` (Hosts, or one Server)."""
    if isinstance(target, Server):
        target = Hosts(target.name, [target])
    target.start()
    try:
        smtp_source(source, env, WARM_UP, target.ports())
        before = target.stored()
        subprocess.run(["sync"])
        time.sleep(0.3)
        cpu0 = target.cpu_split()
        pg0 = target.cluster.cpu() if target.cluster else None
        acked, elapsed = smtp_source(source, env, args, target.ports())
        cpu1 = target.cpu_split()
        pg1 = target.cluster.cpu() if target.cluster else None
        hwm = target.hwm()
        stored = None if before is None else target.stored() - before
    finally:
        target.stop()
    r = dict(target=target.name, wl=wl, acked=acked, rate=acked / elapsed if elapsed else 0.0, hwm=hwm / 1024.0,
             stored=stored, pg1k=(pg1 - pg0) * 1000.0 / acked if acked and pg0 is not None else None,
             **per_1k(cpu0, cpu1, acked))
    log("%-15s %s  %5d acked in %6.2f s = %7.1f msg/s  cpu/1k %s  pg cpu/1k %s  hwm %.1f MiB  stored %s"
        % (r["target"], wl, acked, elapsed, r["rate"], "%.3f" % r["cpu1k"] if r["cpu1k"] else "n/a",
           "%.3f" % r["pg1k"] if r["pg1k"] is not None else "-", r["hwm"], stored))
    return r


def run_together(servers, wl, args, source, env):
    """Warm-up, then the workload `args` against every server of `servers`
    at once, each under its own smtp-source: a simultaneous A/B, in which
    the machine's drift (10-30 % between runs minutes apart) is the same
    for every server. Each server's figures cover the window until the
    first smtp-source finishes (all servers loaded): CPU over the messages
    it stored in that window. Returns one figure dict per server (run_one's
    keys); `acked` and `stored` are whole-run totals, to be compared."""
    started = []
    try:
        for server in servers:
            server.start(free_port())
            started.append(server)
        for server in servers:
            smtp_source(source, env, WARM_UP, [server.port])
        before = [server.stored() for server in servers]
        subprocess.run(["sync"])
        time.sleep(0.3)
        cpu0 = [cpu_split(server.proc.pid) for server in servers]
        t0 = time.monotonic()
        # Counts to files, not pipes: a pipe nobody reads fills and stalls smtp-source.
        outs = [open(os.path.join(WORK, "logs", "smtp-source-%d.out" % server.port), "w+b") for server in servers]
        procs = [subprocess.Popen([source] + args + SRC_COMMON + ["%s:%d" % (HOST, server.port)], env=env,
                                  stdout=out, stderr=subprocess.STDOUT) for server, out in zip(servers, outs)]
        while all(p.poll() is None for p in procs):
            time.sleep(0.005)
        cpu1 = [cpu_split(server.proc.pid) for server in servers]
        window = time.monotonic() - t0
        in_window = [server.stored() - b for server, b in zip(servers, before)]
        for p in procs:
            p.wait()
        acked = []
        for p, out in zip(procs, outs):
            out.seek(0)
            text = out.read()
            out.close()
            if p.returncode != 0:
                log("smtp-source exited %d: %s" % (p.returncode, text.decode(errors="replace")[-300:]))
            acked.append(acknowledged(text))
        hwm = [status_kib(server.proc.pid, "VmHWM") / 1024.0 for server in servers]
        stored = [server.stored() - b for server, b in zip(servers, before)]
    finally:
        for server in started:
            server.stop()
    results = []
    for i, server in enumerate(servers):
        n = in_window[i]
        r = dict(target=server.name, wl=wl, acked=acked[i], rate=n / window if window else 0.0, hwm=hwm[i],
                 stored=stored[i], pg1k=None, window=n, **per_1k(cpu0[i], cpu1[i], n))
        log("%-15s %s  %5d stored in the %.2f s window = %7.1f msg/s  cpu/1k %s  hwm %.1f MiB  acked %d stored %d"
            % (r["target"], wl, n, window, r["rate"], "%.3f" % r["cpu1k"] if r["cpu1k"] else "n/a", r["hwm"],
               acked[i], stored[i]))
        results.append(r)
    return results


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return "%s, nproc %d, %s, kernel %s; load average at start %.2f %.2f %.2f" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), os.cpu_count(), model, platform.release(), *load)


def load_table(results, wls, scale):
    print("\nsmtpcell end-to-end: smtp-source -> smtpcell vs smtp-sink (same run)")
    print("  " + machine())
    print("  command: %s" % " ".join(["bench/load.py"] + sys.argv[1:]))
    for w in wls:
        print("  %s: smtp-source %s %s 127.0.0.1:PORT" % (w, " ".join(scaled(WORKLOADS[w], scale)), " ".join(SRC_COMMON)))
    print()
    print("| wl | target | msg/s | x sink | cpu s/1k msgs | x sink | pg cpu s/1k | peak RSS MiB | acked | stored |")
    print("|----|--------|------:|-------:|--------------:|-------:|------------:|-------------:|------:|-------:|")
    for w in wls:
        sink = next((r for r in results if r["wl"] == w and r["target"] == "smtp-sink"), None)
        for r in [r for r in results if r["wl"] == w]:
            ratio = "%.2f" % (r["rate"] / sink["rate"]) if sink and sink["rate"] else "-"
            cratio = "%.2f" % (r["cpu1k"] / sink["cpu1k"]) if sink and sink["cpu1k"] and r["cpu1k"] else "-"
            ok = "-" if r["stored"] is None else ("%d ok" % r["stored"] if r["stored"] == r["acked"]
                                                  else "%d MISMATCH" % r["stored"])
            print("| %s | %s | %.0f | %s | %s | %s | %s | %.1f | %d | %s |" % (
                w, r["target"], r["rate"], ratio, "%.3f" % r["cpu1k"] if r["cpu1k"] is not None else "n/a", cratio,
                "%.3f" % r["pg1k"] if r.get("pg1k") is not None else "-", r["hwm"], r["acked"], ok))
    bad = [r for r in results if r["stored"] is not None and r["stored"] != r["acked"]]
    if bad:
        print("\nERROR: stored messages differ from acknowledged ones: %r" % bad)
    return not bad


# -------------------------------------------------------------------- idle
async def idle_clients(port, n, sources):
    conns = []
    failed = []

    async def handshake(i):
        r, w = await asyncio.open_connection(HOST, port, local_addr=(sources[i % len(sources)], 0))
        if not (await r.readline()).startswith(b"220"):
            raise OSError("no 220")
        w.write(b"EHLO idle%d.example\r\n" % i)
        while True:
            line = await r.readline()
            if not line:
                raise OSError("closed during EHLO")
            if line[3:4] == b" ":
                if not line.startswith(b"250"):
                    raise OSError(line.decode(errors="replace").strip())
                return w

    async def one(i):
        try:
            # Bounded: a server that stops accepting is reported, not waited for.
            conns.append(await asyncio.wait_for(handshake(i), 30))
        except (OSError, asyncio.TimeoutError) as e:
            failed.append("%s: %s" % (type(e).__name__, e))

    # In waves, so the accept queue and the client are not flooded.
    for start in range(0, n, 500):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 500))))
    return conns, failed


def idle_run(counts):
    rows = []
    raise_nofile()
    sources = ["127.0.0.%d" % i for i in range(1, 9)]
    for n in counts:
        target = smtpcell_target("idle%d" % n, ["--max-connections", str(max(counts)), "--max-connections-per-ip",
                                                str(max(counts))])
        target.start(free_port())
        pid = target.proc.pid
        base = status_kib(pid, "VmRSS")
        loop = asyncio.new_event_loop()
        conns, failed = loop.run_until_complete(idle_clients(target.port, n, sources))
        time.sleep(1.0)
        rss = status_kib(pid, "VmRSS")
        hwm = status_kib(pid, "VmHWM")
        alive = target.proc.poll() is None
        maps = sum(1 for _ in open("/proc/%d/maps" % pid)) if alive else 0
        for w in conns:
            w.close()
        loop.run_until_complete(asyncio.sleep(0.5))
        loop.close()
        target.stop()
        why = "; ".join(sorted(set(failed))[:3])
        rows.append(dict(n=n, held=len(conns), base=base, rss=rss, hwm=hwm, maps=maps, why=why))
        log("idle %d: held %d, RSS %d KiB (base %d), maps %d %s" % (n, len(conns), rss, base, maps, why))
    print("\nsmtpcell idle connections (each: banner read, EHLO sent, 250 read, then held)")
    print("  " + machine())
    print("  server: smtpcell --max-connections %d --max-connections-per-ip %d; clients from %s"
          % (max(counts), max(counts), ",".join(sources)))
    print()
    print("| N asked | held | server RSS MiB | RSS at start MiB | per connection KiB | peak RSS MiB | mappings | failures |")
    print("|--------:|-----:|---------------:|-----------------:|-------------------:|-------------:|---------:|----------|")
    for r in rows:
        per = (r["rss"] - r["base"]) / r["held"] if r["held"] else 0
        print("| %d | %d | %.1f | %.1f | %.1f | %.1f | %d | %s |" % (
            r["n"], r["held"], r["rss"] / 1024, r["base"] / 1024, per, r["hwm"] / 1024, r["maps"], r["why"] or "-"))
    return all(r["held"] == r["n"] for r in rows)


def create_cost_us(n=200):
    """Mean microseconds to create one empty file in a fresh directory beside
    the Maildirs (the probe's files are kept: deleting them would start the
    very effect being measured; the next run's clean-up removes them)."""
    d = os.path.join(WORK, "maildir", RUN_ID, "probe-%d" % time.monotonic_ns())
    os.makedirs(d)
    t0 = time.perf_counter()
    for i in range(n):
        os.close(os.open(os.path.join(d, str(i)), os.O_CREAT | os.O_WRONLY | os.O_EXCL))
    return (time.perf_counter() - t0) / n * 1e6


def clean_maildirs(wait):
    """Removes earlier runs' Maildirs; with `wait`, lets the kernel forget them first.

    ext4 without a journal (this VM's disk) will not reuse an inode freed
    less than 60 s ago (360 s while its inode-table block is still dirty):
    `recently_deleted` in fs/ext4/ialloc.c. The allocator scans past every
    such inode, so right after 10,000 files are deleted, creating a file
    costs 100-900 us instead of ~15 us, and a Maildir writer measured then
    spends most of its CPU in that scan. So: delete, `sync` (the blocks are
    clean, so 60 s applies), wait 65 s, then check that creating files is
    cheap (every 15 s, at most 5 more minutes); no wait after fewer than
    1,000 files."""
    old = glob.glob(os.path.join(WORK, "maildir", "*"))
    files = sum(len(names) for d in old for _, _, names in os.walk(d))
    for d in old:
        shutil.rmtree(d, ignore_errors=True)
    if not old:
        return
    # Written back now, not by the flusher during the first run.
    os.sync()
    # A few files (a recipients table, a run on fresh filesystems) leave
    # nothing worth waiting for.
    if not wait or files < 1000:
        return
    log("removed earlier Maildirs; waiting 65 s for ext4 to let their inodes be reused")
    time.sleep(65)
    deadline = time.monotonic() + 300
    while True:
        cost = create_cost_us()
        if cost < 40 or time.monotonic() > deadline:
            log("creating a file costs %.0f us; starting" % cost)
            return
        log("creating a file still costs %.0f us, waiting" % cost)
        time.sleep(15)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="a,b,c")
    ap.add_argument("--targets", default="smtp-sink,smtpcell",
                    help="smtp-sink, smtpcell, or NAME=PATH for another smtpcell binary (before/after runs)")
    ap.add_argument("--store", default="maildir", help="maildir, postgres or both (comma-separated)")
    ap.add_argument("--hosts", default="1", help="smtpcell hosts per target: 1, 2 or both (comma-separated)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply message counts (quick runs)")
    ap.add_argument("--idle", default="1000,10000", help="idle connection counts ('' to skip)")
    ap.add_argument("--no-load", action="store_true", help="only the idle run")
    o = ap.parse_args()
    if not os.path.exists(SMTPCELL):
        raise SystemExit("%s missing: cargo build --release -p smtpcell" % SMTPCELL)
    clean_maildirs(wait=True)
    ok = True
    if not o.no_load:
        source, sink, env = postfix_tools()
        wls = o.workloads.split(",")
        results = []
        for w in wls:
            args = scaled(WORKLOADS[w], o.scale)
            for t in o.targets.split(","):
                if t == "smtp-sink":
                    results.append(run_one(sink_target(sink, env), w, args, source, env))
                    continue
                # smtpcell, or NAME=PATH: another binary, for before/after comparisons
                name, _, path = t.partition("=")
                for store in o.store.split(","):
                    for hosts in [int(n) for n in o.hosts.split(",")]:
                        target = smtpcell_hosts(store, hosts, name, path or None)
                        results.append(run_one(target, w, args, source, env))
        ok = load_table(results, wls, o.scale) and ok
    if o.idle:
        ok = idle_run([int(n) for n in o.idle.split(",")]) and ok
    log("Maildirs of this run kept under %s (removed by the next run, before it waits)" % os.path.join(WORK, "maildir"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
