#!/usr/bin/env python3
"""What metrics and logs cost (issue 16): one smtpcell binary, metrics off
and on, same run, under Postfix's smtp-source.

Issue 16 asks for the CPU per message of metrics on against off on
workload b (same-run A/B). Variants, each a fresh server on a fresh Maildir
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

With metrics on, /metrics is scraped once at the end of each run and its
smtpcell_messages_stored_total must equal the files in new/ (warm-up
included): the counters agree with the disk.

Figures per (workload, variant, rep): msg/s, server CPU s per 1,000
messages, peak RSS, acknowledged == stored; then each variant's CPU per
message over off's in the same rep (median of the reps' ratios, their
range, a 95 % bootstrap interval of the median) and the extra ms per
message. Reps interleave the variants, rotating their order.

Usage: bench/metrics.py [--workloads b] [--reps 12] [--variants off,on,info,on-json] [--scale F] [--json FILE]
Env: SMTPCELL (binary, default target/release/smtpcell), BENCH_WORK (default
/tmp/smtpcell-bench).
"""

import argparse
import json
import os
import re
import shlex
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (bench/load.py, beside this file)
from policy import cell, fmt, med, median_ci  # noqa: E402  (the same statistics as bench/policy.py)

VARIANTS = ["off", "on", "info", "on-json"]


def log(*a):
    print("[metrics]", *a, file=sys.stderr, flush=True)


class Variant(load.Server):
    """One smtpcell process for one variant."""

    def __init__(self, variant, binary):
        self.variant = variant
        self.metrics_port = load.free_port() if variant.startswith("on") else None
        extra = []
        if self.metrics_port:
            extra += ["--metrics", "%s:%d" % (load.HOST, self.metrics_port)]
        if variant == "on-json":
            extra += ["--log-format", "json"]
        base = load.smtpcell_target(variant, extra=extra, binary=binary)
        env = dict(base.env, SMTPCELL_LOG="info") if variant in ("info", "on-json") else base.env
        super().__init__(variant, base.argv, env, base.maildir)
        self.scraped = None

    def stop(self):
        # Before the server goes: the counters of the whole run.
        if self.metrics_port and self.proc and self.proc.poll() is None:
            url = "http://%s:%d/metrics" % (load.HOST, self.metrics_port)
            text = urllib.request.urlopen(url, timeout=30).read().decode()
            self.scraped = sum(float(v) for v in re.findall(r"^smtpcell_messages_stored_total\{[^}]*\} (\S+)$",
                                                            text, re.M))
            self.on_disk = self.stored()
        super().stop()


def pairs(results, wl, variant):
    """(variant's, off's) CPU s per 1,000 messages, rep by rep."""
    out = []
    for r in results:
        if r["wl"] == wl and r["target"] == variant:
            off = next((p for p in results if p["wl"] == wl and p["target"] == "off" and p["rep"] == r["rep"]), None)
            if off and off["cpu1k"] and r["cpu1k"] is not None:
                out.append((r["cpu1k"], off["cpu1k"]))
    return out


def report(results, wls, variants, o):
    print("\nsmtpcell metrics cost: smtp-source -> one smtpcell binary, metrics off and on (same run)")
    print("  " + o.machine)
    print("  load average at the end %.2f %.2f %.2f" % os.getloadavg())
    print("  binary: %s" % o.binary)
    print("  command: %s" % " ".join(["bench/metrics.py"] + [shlex.quote(a) for a in sys.argv[1:]]))
    for w in wls:
        print("  %s: smtp-source %s %s 127.0.0.1:PORT" % (w, " ".join(load.scaled(load.WORKLOADS[w], o.scale)),
                                                         " ".join(load.SRC_COMMON)))
    if o.reps > 1:
        print("  %d reps, variants interleaved (order rotated per rep); median first, every rep in brackets" % o.reps)
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
                paired = pairs(results, w, v)
                ratios = [a / b for a, b in paired]
                spread = " [%.2f, %.2f]" % (min(ratios), max(ratios)) if len(ratios) > 1 else ""
                ci = "%.2f-%.2f" % median_ci(ratios) if len(ratios) > 2 else "-"
                print("| %s | %s | %s%s | %s | %s |" % (w, v, fmt(med(ratios), 3), spread, ci,
                                                      fmt(med(a - b for a, b in paired), 4)))
    bad = [r for r in results if r["stored"] != r["acked"] or not r["agree"]]
    for r in bad:
        print("ERROR: %s %s rep %d: %d acknowledged, %d stored, /metrics %s for %s files in new/"
              % (r["wl"], r["target"], r["rep"], r["acked"], r["stored"], r["scraped"], r["on_disk"]))
    return not bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="b")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--reps", type=int, default=12, help="repeat every (workload, variant), variants interleaved")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply message counts (quick runs)")
    ap.add_argument("--binary", default=load.SMTPCELL, help="the smtpcell binary (default $SMTPCELL)")
    ap.add_argument("--json", help="also write every run's figures to this file")
    o = ap.parse_args()
    o.binary = os.path.abspath(o.binary)
    if not os.path.exists(o.binary):
        raise SystemExit("%s missing: cargo build --release -p smtpcell" % o.binary)
    wls, variants = o.workloads.split(","), o.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit("unknown variant %s (have %s)" % (v, ", ".join(VARIANTS)))
    for w in wls:
        if w not in load.WORKLOADS:
            raise SystemExit("unknown workload %s (have %s)" % (w, ", ".join(load.WORKLOADS)))
    load.clean_maildirs(wait=True)
    o.machine = load.machine()
    source, _sink, env = load.postfix_tools()
    results = []
    for rep in range(o.reps):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for w in wls:
            for v in order:
                target = Variant(v, o.binary)
                r = load.run_one(target, w, load.scaled(load.WORKLOADS[w], o.scale), source, env)
                on_disk = getattr(target, "on_disk", None)
                r.update(rep=rep, scraped=target.scraped, on_disk=on_disk,
                         agree=target.scraped is None or target.scraped == on_disk)
                results.append(r)
    ok = report(results, wls, variants, o)
    if o.json:
        with open(o.json, "w") as f:
            json.dump(dict(command=sys.argv, binary=o.binary, machine=o.machine, results=results), f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
