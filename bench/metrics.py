#!/usr/bin/env python3
"""What metrics and logs cost (issue 16): one smtpcell binary, metrics off
and on, same run, under Postfix's smtp-source.

Issue 16 asks for the CPU per message of metrics on against off on
workload b (same-run A/B). Variants, each a fresh server on a fresh Maildir
(by default on a new journaled filesystem of its own: --fs, fresh_fs.py)
with the embedded default (no configuration file; method and workloads as
bench/load.py's, which this imports):

  off        no --metrics: no series exist, an event costs its log line
             (filtered out at SMTPCELL_LOG=warn) and the summary's counting
  on         --metrics 127.0.0.1:PORT: every event also moves its series
  info       no --metrics, text logs at SMTPCELL_LOG=info: the default
             before issue 16 (every message's `message stored` line and,
             now, every connection's summary, written to a file as journald
             would take them)
  on-json    --metrics and --log-format json at SMTPCELL_LOG=info: what
             dist/smtpcell.toml runs
  before     --before BINARY (a build without the events, e.g. of the
             commit before issue 16) as `off` runs: what the events and the
             per-connection summary cost when nothing is collected

With metrics on, /metrics is scraped once at the end of each run and its
smtpcell_messages_stored_total must equal the files in new/ (warm-up
included): the counters agree with the disk.

Figures per (workload, variant, rep): msg/s, server CPU s per 1,000
messages, peak RSS, acknowledged == stored; then each variant's CPU per
message over off's in the same rep (median of the reps' ratios, their
range, a 95 % bootstrap interval of the median) and the extra ms per
message. Reps interleave the variants, rotating their order.

Usage: bench/metrics.py [--workloads b] [--reps 12] [--variants off,on,info,on-json] [--before BINARY] [--scale F] [--json FILE]
                        [--fs fresh|shared]
Env: SMTPCELL (binary, default target/release/smtpcell), BENCH_WORK (default
/tmp/smtpcell-bench).
"""

import json
import os
import re
import shlex
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (bench/load.py, beside this file)
from ab import arguments, cell, method, prepare, ratio_cells, runs, stores  # noqa: E402

VARIANTS = ["off", "on", "info", "on-json", "before"]


def log(*a):
    print("[metrics]", *a, file=sys.stderr, flush=True)


class Variant(load.Server):
    """One smtpcell process for one variant."""

    def __init__(self, variant, binary, before, under):
        self.variant = variant
        self.metrics_port = load.free_port() if variant.startswith("on") else None
        extra = []
        if self.metrics_port:
            extra += ["--metrics", "%s:%d" % (load.HOST, self.metrics_port)]
        if variant == "on-json":
            extra += ["--log-format", "json"]
        base = load.smtpcell_target(variant, extra=extra, binary=before if variant == "before" else binary,
                                    under=under)
        env = dict(base.env, SMTPCELL_LOG="info") if variant in ("info", "on-json") else base.env
        super().__init__(variant, base.argv, env, base.maildir)
        self.scraped = self.on_disk = None

    def stop(self):
        # Before the server goes: the counters of the whole run.
        if self.metrics_port and self.proc and self.proc.poll() is None:
            url = "http://%s:%d/metrics" % (load.HOST, self.metrics_port)
            text = urllib.request.urlopen(url, timeout=30).read().decode()
            self.scraped = sum(float(v) for v in re.findall(r"^smtpcell_messages_stored_total\{[^}]*\} (\S+)$",
                                                            text, re.M))
            self.on_disk = self.stored()
        super().stop()

    def figures(self):
        agree = self.scraped is None or self.scraped == self.on_disk
        return dict(scraped=self.scraped, on_disk=self.on_disk, agree=agree)


def report(results, wls, variants, o):
    print("\nsmtpcell metrics cost: smtp-source -> one smtpcell binary, metrics off and on (same run)")
    print("  " + o.machine)
    print("  load average at the end %.2f %.2f %.2f" % os.getloadavg())
    print("  binary: %s%s" % (o.binary, "; before: %s" % o.before if o.before else ""))
    print("  command: %s" % " ".join(["bench/metrics.py"] + [shlex.quote(a) for a in sys.argv[1:]]))
    print("  " + stores(o))
    for w in wls:
        print("  %s: smtp-source %s %s 127.0.0.1:PORT" % (w, " ".join(load.scaled(load.WORKLOADS[w], o.scale)),
                                                         " ".join(load.SRC_COMMON)))
    if o.reps > 1:
        print("  " + method(o))
    print()
    print("| wl | variant | msg/s | server CPU s/1k msgs | peak RSS MiB | acked | stored | /metrics == new/ |")
    print("|----|---------|------:|---------------------:|-------------:|------:|-------:|-----------------:|")
    for w in wls:
        for v in variants:
            rs = [r for r in results if r["wl"] == w and r["target"] == v]
            ok = all(r["stored"] == r["acked"] for r in rs)
            agree = "-" if not v.startswith("on") else ("all" if all(r["agree"] for r in rs) else "MISMATCH")
            print("| %s | %s | %s | %s | %s | %d | %s | %s |" % (
                w, v, cell(rs, "rate", 0), cell(rs, "cpu1k", 3), cell(rs, "hwm", 1), sum(r["acked"] for r in rs),
                "all" if ok else "MISMATCH", agree))
    if "off" in variants and len(variants) > 1:
        print("\nServer CPU per message over off's in the same rep: the reps' median [min, max], a 95 % bootstrap"
              " interval\nof that median; extra server CPU in ms per message (median of the reps' differences)")
        print()
        print("| wl | variant | server CPU x off | 95 % interval | extra ms/msg |")
        print("|----|---------|-----------------:|--------------:|-------------:|")
        for w in wls:
            for v in variants:
                if v == "off":
                    continue
                print("| %s | %s | %s | %s | %s |" % (w, v, *ratio_cells(results, w, v, "off")))
    bad = [r for r in results if r["stored"] != r["acked"] or not r["agree"]]
    for r in bad:
        print("ERROR: %s %s rep %d: %d acknowledged, %d stored, /metrics %s for %s files in new/"
              % (r["wl"], r["target"], r["rep"], r["acked"], r["stored"], r["scraped"], r["on_disk"]))
    return not bad


def main():
    o = arguments(__doc__, VARIANTS, 12, lambda ap: ap.add_argument(
        "--before", help="the binary of variant `before` (needed only with it)"), VARIANTS[:4])
    if "before" in o.variants and not (o.before and os.path.exists(o.before)):
        raise SystemExit("variant before needs --before BINARY")
    wls, variants = o.wls, o.variants
    source, env = prepare(o)
    results = runs(o, source, env, lambda v, under: Variant(v, o.binary, o.before, under))
    ok = report(results, wls, variants, o)
    if o.json:
        with open(o.json, "w") as f:
            json.dump(dict(command=sys.argv, binary=o.binary, machine=o.machine, results=results), f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
