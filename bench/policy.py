#!/usr/bin/env python3
"""What the policy of a configuration file costs (issue 14): one smtpcell
binary, with and without a policy, same run, under Postfix's smtp-source.

Issue 14 is done when "the policy checks cost at most 10 % of server CPU
per message on workload b with a 10,000-entry recipients table (same-run
A/B)". Variants, each a fresh server on a fresh Maildir, by default on a
new journaled filesystem of its own (--fs, see fresh_fs.py; method and
workloads as bench/load.py's, which this imports):

  plain            no configuration file: the embedded default (every
                   recipient accepted into the one Maildir, no question
                   asked at RCPT)
  plain-again      plain once more: against plain, the bench's own bias
                   and spread (an A/A comparison)
  domains          `domains` only: every RCPT crosses into the host's
                   policy, every message still goes to the one Maildir
  questions        `domains` and one connection limit (concurrent
                   connections per client): a connection slot per
                   connection; no per-message limit, so MAIL is not asked
                   (the guest asks MAIL only when a message limit is on)
  policy-inbox     everything `policy` has but the recipients table:
                   `relay_networks` and every `[rate_limits]` limit; the
                   copy goes to the one Maildir
  policy           the policy of the issue's criterion: the recipients
                   table (10,000 users and more, see recipients_table()),
                   `mailboxes` (each copy into its user's own Maildir,
                   ROOT/bench.example/rcpt/), relay_networks, every rate
                   limit set too high to trigger (so each is checked on
                   every connection, MAIL and RCPT)
  policy-before    `policy` on the binary of --before: against `policy`,
                   what a change to the server did to the policy's cost
                   (best with --together)
  policy-greylist  `policy` with greylisting on: min_delay_secs = 0, and
                   smtp-source's triplet deferred once and passed by a
                   client of this script before the warm-up, so that every
                   measured RCPT finds a passed triplet (the steady state
                   of a known sender)

smtp-source sends from bench@bench.example to rcpt@bench.example, from
127.0.0.1, which no variant lists in relay_networks (a relay network skips
greylisting). Greylisting needs no fake clock here: with a minimum delay of
0 s the retry right after the first attempt passes.

Figures per (workload, variant, rep): msg/s, server CPU s per 1,000
messages (utime+stime of the server process; its user and system parts
apart too), peak RSS, acknowledged ==
files in the new/ of the Maildir the variant stores in (checked, and any
copy that went elsewhere is named). Then, per variant, its CPU per message
over plain's in the same rep (the reps' median, their spread, and a 95 %
bootstrap interval of the median) and the extra server CPU in ms per
message. Reps interleave the variants, each rep rotating their order so
that none always runs first. The machine's noise (10-30 % between runs)
is why: pair each run with plain's of the same rep, and use many reps
(--reps 12 --scale 2). With --together a rep runs its variants at once,
each a server under its own smtp-source, and measures each over the
window in which all are loaded (bench/load.py's run_together): the
machine's drift is then the same for every variant, and a rep's ratio
moves by about 0.03 instead of 0.3 (plain against plain, --variants
plain,plain-again: 1.00, 95 % interval 0.996-1.013 over 10 reps). Each
server then shares the machine with the others, so its CPU per message is
higher than alone: the ratios are what to read, not the absolute figures.

Usage: bench/policy.py [--workloads b] [--reps 3] [--variants V,V...] [--scale F] [--users N] [--json FILE]
                       [--together] [--fs fresh|shared] [--before BINARY]
Env: SMTPCELL (binary, default target/release/smtpcell), BENCH_WORK (default
/tmp/smtpcell-bench), SMTPCELL_LOG (default warn).
"""

import json
import os
import shlex
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (bench/load.py, beside this file)
from ab import arguments, cell, fmt, med, median_ci, method, pairs, prepare, ratio_cells, runs, stores  # noqa: E402

VARIANTS = ["plain", "plain-again", "domains", "questions", "policy-inbox", "policy", "policy-greylist", "policy-before"]
DOMAIN = "bench.example"
# A local domain whose every user is caught by one entry (`@domain`).
CATCHALL_DOMAIN = "catchall.example"
# Documentation networks (RFC 5737, RFC 3849): never the bench's loopback
# client, which would then skip greylisting.
RELAY_NETWORKS = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
# Every limit of [rate_limits], each far above what one run sends (5,200
# messages, 20 connections at once), so that every check runs and none refuses.
RATE_LIMITS = {
    "client_connections_per_minute": 1000000,
    "network_connections_per_minute": 1000000,
    "client_concurrent_connections": 10000,
    "network_concurrent_connections": 10000,
    "client_messages_per_minute": 1000000,
    "network_messages_per_minute": 1000000,
    "client_recipients_per_minute": 1000000,
    "network_recipients_per_minute": 1000000,
    "client_auth_failures_per_hour": 1000000,
    "network_auth_failures_per_hour": 1000000,
    "user_messages_per_hour": 1000000,
    "sender_messages_per_hour": 1000000,
}
ALIASES = 100


def log(*a):
    print("[policy]", *a, file=sys.stderr, flush=True)


def toml_str(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def recipients_table(users):
    """The virtual(5) table: `users` mailboxes userN@bench.example, ALIASES
    aliases (two mailboxes each; every tenth also forwards off-site), the
    catch-all of catchall.example, and rcpt@bench.example, smtp-source's
    recipient, near the end. Returns the text and its number of keys."""
    lines = ["# smtpcell policy bench: %d users, %d aliases, a catch-all, smtp-source's recipient" % (users, ALIASES)]
    lines += ["user%d@%s user%d@%s" % (i, DOMAIN, i, DOMAIN) for i in range(users)]
    for i in range(ALIASES):
        targets = ["user%d@%s" % (i % users, DOMAIN), "user%d@%s" % ((i + 1) % users, DOMAIN)]
        if i % 10 == 0:
            targets.append("alias%d@elsewhere.example" % i)
        lines.append("alias%d@%s %s" % (i, DOMAIN, ", ".join(targets)))
    lines.append("@%s user0@%s" % (CATCHALL_DOMAIN, DOMAIN))
    lines.append("rcpt@%s rcpt@%s" % (DOMAIN, DOMAIN))
    return "\n".join(lines) + "\n", users + ALIASES + 2


def config_text(variant, run_dir, table):
    """smtpcell.toml for `variant` (None for plain); `table` is the
    recipients file's path."""
    if variant in ("plain", "plain-again"):
        return None
    out = ["domains = [%s]" % ", ".join(toml_str(d) for d in (DOMAIN, CATCHALL_DOMAIN)),
           "outgoing = %s" % toml_str(os.path.join(run_dir, "outgoing"))]
    if variant == "domains":
        return "\n".join(out) + "\n"
    if variant == "questions":
        return "\n".join(out + ["\n[rate_limits]", "client_concurrent_connections = 10000"]) + "\n"
    out.append("relay_networks = [%s]" % ", ".join(toml_str(n) for n in RELAY_NETWORKS))
    if variant in ("policy", "policy-greylist"):
        out.append("recipients = %s" % toml_str(table))
        out.append("mailboxes = %s" % toml_str(os.path.join(run_dir, "mailboxes")))
    out.append("\n[rate_limits]")
    out += ["%s = %d" % kv for kv in RATE_LIMITS.items()]
    if variant == "policy-greylist":
        out += ["\n[greylisting]", "enabled = true", "min_delay_secs = 0",
                "database = %s" % toml_str(os.path.join(run_dir, "greylist.redb"))]
    return "\n".join(out) + "\n"


def pre_pass(port):
    """Defers smtp-source's triplet once, then passes it (min_delay_secs =
    0): from here on its RCPTs find a passed triplet."""
    with smtplib.SMTP(load.HOST, port, local_hostname="bench.localhost", timeout=30) as s:
        s.ehlo()
        s.mail(load.SRC_COMMON[1])
        first = s.rcpt(load.SRC_COMMON[3])
        second = s.rcpt(load.SRC_COMMON[3])
        s.rset()
    if first[0] != 451 or second[0] != 250:
        raise SystemExit("greylisting pre-pass: RCPT answered %r then %r, expected 451 then 250" % (first, second))


class Variant(load.Server):
    """One smtpcell process for one variant, its files in a fresh directory."""

    def __init__(self, variant, binary, table, under):
        base = load.smtpcell_target(variant, binary=binary, under=under)
        # policy-before is policy, on another binary.
        kind = "policy" if variant == "policy-before" else variant
        self.variant, self.inbox = kind, base.maildir
        run_dir = base.maildir + ".run"
        os.makedirs(run_dir)
        self.mailbox = os.path.join(run_dir, "mailboxes", DOMAIN, "rcpt")
        text = config_text(kind, run_dir, table)
        extra = []
        if text is not None:
            path = os.path.join(run_dir, "smtpcell.toml")
            with open(path, "w") as f:
                f.write(text)
            check = subprocess.run([binary, "config", "check", path], capture_output=True, text=True)
            if check.returncode != 0:
                raise SystemExit("%s: smtpcell config check failed:\n%s%s" % (variant, check.stdout, check.stderr))
            extra = ["--config", path]
        super().__init__(variant, lambda port: base.argv(port) + extra, base.env,
                         self.mailbox if kind in ("policy", "policy-greylist") else self.inbox)

    def start(self, port):
        super().start(port)
        if self.variant == "policy-greylist":
            pre_pass(port)

    def stored(self):
        new = os.path.join(self.maildir, "new")
        return len(os.listdir(new)) if os.path.isdir(new) else 0

    def elsewhere(self):
        """Messages in the one Maildir when they belong in the mailbox."""
        if self.maildir == self.inbox:
            return 0
        new = os.path.join(self.inbox, "new")
        return len(os.listdir(new)) if os.path.isdir(new) else 0

    def figures(self):
        return dict(elsewhere=self.elsewhere(), dir=self.maildir)


def split_extra(results, wl, variant, key):
    """The median over reps of `variant`'s `key` (user1k or sys1k) minus
    plain's in the same rep, in ms per message."""
    return fmt(med(a - b for a, b in pairs(results, wl, variant, "plain", key)), 4)


def report(results, wls, variants, o, keys):
    print("\nsmtpcell policy cost: smtp-source -> one smtpcell binary, with and without a policy (same run)")
    print("  " + o.machine)
    print("  load average at the end %.2f %.2f %.2f" % os.getloadavg())
    print("  binary: %s%s" % (o.binary, "; policy-before: %s" % o.before if o.before else ""))
    print("  command: %s" % " ".join(["bench/policy.py"] + [shlex.quote(a) for a in sys.argv[1:]]))
    print("  " + stores(o))
    for w in wls:
        print("  %s: smtp-source %s %s 127.0.0.1:PORT" % (w, " ".join(load.scaled(load.WORKLOADS[w], o.scale)),
                                                         " ".join(load.SRC_COMMON)))
    print("  recipients table: %d keys (%d users, %d aliases, a catch-all, rcpt@%s)" % (keys, o.users, ALIASES,
                                                                                        DOMAIN))
    if o.reps > 1:
        print("  " + method(o))
    print()
    print("(user / system: the median of each part, which need not add up to the median of the whole)\n")
    print("| wl | variant | msg/s | server CPU s/1k msgs | user / system s/1k | peak RSS MiB | acked | stored |")
    print("|----|---------|------:|---------------------:|-------------------:|-------------:|------:|-------:|")
    for w in wls:
        for v in variants:
            rs = [r for r in results if r["wl"] == w and r["target"] == v]
            ok = all(r["stored"] == r["acked"] for r in rs)
            split = "%s / %s" % (fmt(med(r["user1k"] for r in rs), 3), fmt(med(r["sys1k"] for r in rs), 3))
            print("| %s | %s | %s | %s | %s | %s | %d | %s |" % (
                w, v, cell(rs, "rate", 0), cell(rs, "cpu1k", 3), split, cell(rs, "hwm", 1), sum(r["acked"] for r in rs),
                "all" if ok else "MISMATCH " + ",".join("%d (%d elsewhere)" % (r["stored"], r["elsewhere"])
                                                        for r in rs)))
    if "plain" in variants and len(variants) > 1:
        print("\nServer CPU per message over plain's in the same rep: the reps' median [min, max], and a 95 %"
              " bootstrap\ninterval of that median; extra server CPU in ms per message (median of the reps'"
              " differences),\nthen its user and system parts (each the median of its own differences);"
              " msg/s over plain's (medians)")
        print()
        print("| wl | variant | server CPU x plain | 95 % interval | extra ms/msg | user / system | msg/s x plain |")
        print("|----|---------|-------------------:|--------------:|-------------:|--------------:|--------------:|")
        for w in wls:
            plain = [r for r in results if r["wl"] == w and r["target"] == "plain"]
            pr = med(r["rate"] for r in plain)
            for v in variants:
                if v == "plain":
                    continue
                rs = [r for r in results if r["wl"] == w and r["target"] == v]
                vr = med(r["rate"] for r in rs)
                extra = [split_extra(results, w, v, key) for key in ("user1k", "sys1k")]
                print("| %s | %s | %s | %s | %s | %s / %s | %s |" % (
                    w, v, *ratio_cells(results, w, v, "plain"), *extra,
                    "%.2f" % (vr / pr) if vr is not None and pr else "-"))
        if "b" in wls and "policy" in variants:
            ratio = med(a / b for a, b in pairs(results, "b", "policy", "plain") if b)
            of = [med(r["cpu1k"] for r in results if r["wl"] == "b" and r["target"] == v) for v in ("policy", "plain")]
            if ratio is not None and of[1]:
                print("\nIssue 14 criterion (policy on b, CPU per message at most 1.10 x plain): median of the reps'"
                      " ratios %.3f, ratio of the medians %.3f: %s" % (ratio, of[0] / of[1], "met by both" if max(
                          ratio, of[0] / of[1]) <= 1.10 else "over 1.10 by at least one"))
    if "policy" in variants and "policy-before" in variants:
        for w in wls:
            ratios = [a / b for a, b in pairs(results, w, "policy", "policy-before") if b]
            if ratios:
                ci = "%.3f-%.3f" % median_ci(ratios) if len(ratios) > 2 else "- (3 reps or more)"
                print("\n%s: policy's CPU per message over policy-before's (%s) in the same rep: median %.3f, 95 %% "
                      "interval %s, reps %.3f-%.3f" % (w, o.before, med(ratios), ci, min(ratios), max(ratios)))
    bad = [r for r in results if r["stored"] != r["acked"]]
    for r in bad:
        print("ERROR: %s %s rep %d: %d acknowledged, %d in %s/new (%d in the one Maildir instead)"
              % (r["wl"], r["target"], r["rep"], r["acked"], r["stored"], r["dir"], r["elsewhere"]))
    return not bad


def main():
    def more(ap):
        ap.add_argument("--users", type=int, default=10000, help="mailboxes in the recipients table")
        ap.add_argument("--before", help="the binary variant policy-before runs")
    o = arguments(__doc__, VARIANTS, 3, more, default=[v for v in VARIANTS if v not in ("plain-again", "policy-before")])
    if ("policy-before" in o.variants) != bool(o.before):
        raise SystemExit("--before BINARY and the variant policy-before go together")
    o.before = o.before and os.path.abspath(o.before)
    wls, variants = o.wls, o.variants
    source, env = prepare(o)
    table_dir = os.path.join(load.WORK, "maildir", load.RUN_ID)
    os.makedirs(table_dir, exist_ok=True)
    table = os.path.join(table_dir, "recipients")
    text, keys = recipients_table(o.users)
    with open(table, "w") as f:
        f.write(text)
    results = runs(o, source, env,
                   lambda v, under: Variant(v, o.before if v == "policy-before" else o.binary, table, under))
    ok = report(results, wls, variants, o, keys)
    if o.json:
        with open(o.json, "w") as f:
            json.dump(dict(command=sys.argv, binary=o.binary, machine=o.machine, results=results), f, indent=1)
    if o.fs == "shared":
        log("Maildirs of this run kept under %s (removed by the next run, before it waits)"
            % os.path.join(load.WORK, "maildir"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
