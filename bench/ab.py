"""Same-run A/B comparisons of smtpcell variants under smtp-source, shared
by bench/policy.py and bench/metrics.py: their command line, the
interleaved reps (each run's store on a fresh filesystem, see fresh_fs.py),
and the statistics of the per-rep ratios."""

import argparse
import contextlib
import os
import random
import statistics

import load
from fresh_fs import fresh_fs, private_mounts


def arguments(doc, variants, reps, more=None, default=None):
    """The common options (`--workloads`, `--variants`, `--reps`, `--scale`,
    `--binary`, `--json`, `--together`, `--fs`), `more(parser)` adding a script's own,
    checked: `o.wls` and `o.variants` are lists (`default`, or every
    variant). With `--fs fresh` (the default) the script re-runs itself in
    a private mount namespace first."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="b")
    ap.add_argument("--variants", default=",".join(default or variants))
    ap.add_argument("--reps", type=int, default=reps, help="repeat every (workload, variant), variants interleaved")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply message counts (quick runs)")
    ap.add_argument("--binary", default=load.SMTPCELL, help="the smtpcell binary (default $SMTPCELL)")
    ap.add_argument("--json", help="also write every run's figures to this file")
    ap.add_argument("--together", action="store_true",
                    help="run a rep's variants at once, each under its own smtp-source (see load.run_together), "
                         "instead of one after the other")
    ap.add_argument("--fs", choices=["fresh", "shared"], default="fresh",
                    help="fresh: every run's store on a new journaled ext4 (root; see fresh_fs.py); shared: "
                         "on the work disk, under $BENCH_WORK/maildir")
    if more:
        more(ap)
    o = ap.parse_args()
    o.binary = os.path.abspath(o.binary)
    if not os.path.exists(o.binary):
        raise SystemExit("%s missing: cargo build --release -p smtpcell" % o.binary)
    o.wls, o.variants = o.workloads.split(","), o.variants.split(",")
    for v in o.variants:
        if v not in variants:
            raise SystemExit("unknown variant %s (have %s)" % (v, ", ".join(variants)))
    for w in o.wls:
        if w not in load.WORKLOADS:
            raise SystemExit("unknown workload %s (have %s)" % (w, ", ".join(load.WORKLOADS)))
    if o.fs == "fresh":
        private_mounts()
    return o


def prepare(o):
    """Removes the previous run's Maildirs (and, for stores on the work
    disk, waits: see load.py), notes the machine in `o.machine`; returns
    smtp-source and its environment."""
    load.clean_maildirs(wait=o.fs == "shared")
    o.machine = load.machine()
    source, _sink, env = load.postfix_tools()
    return source, env


def interleaved(o, source, env, target):
    """Every (rep, workload, variant) run, the variants' order rotated per
    rep so that none always runs first; `target(variant, under)` makes the
    server, its files under the directory `under` (a fresh filesystem's
    root, or None: the work disk), and `target.figures()` (if any) adds to
    its run's figures."""
    results = []
    for rep in range(o.reps):
        order = o.variants[rep % len(o.variants):] + o.variants[:rep % len(o.variants)]
        for w in o.wls:
            for v in order:
                with store(o, "%s-%s-%d" % (w, v, rep)) as under:
                    server = target(v, under)
                    r = load.run_one(server, w, load.scaled(load.WORKLOADS[w], o.scale), source, env)
                    r.update(rep=rep, **(server.figures() if hasattr(server, "figures") else {}))
                results.append(r)
    return results


def simultaneous(o, source, env, target):
    """Every (rep, workload): all the variants at once, each its own server
    under its own smtp-source (`load.run_together`), so that the machine's
    drift between runs cannot enter a rep's ratios; `target` as for
    `interleaved`."""
    results = []
    for rep in range(o.reps):
        # Started and warmed up in turn: the order rotates per rep.
        order = o.variants[rep % len(o.variants):] + o.variants[:rep % len(o.variants)]
        for w in o.wls:
            with contextlib.ExitStack() as stack:
                servers = [target(v, stack.enter_context(store(o, "%s-%s-%d" % (w, v, rep)))) for v in order]
                rs = load.run_together(servers, w, load.scaled(load.WORKLOADS[w], o.scale), source, env)
                for server, r in zip(servers, rs):
                    r.update(rep=rep, **(server.figures() if hasattr(server, "figures") else {}))
            results += rs
    return results


def runs(o, source, env, target):
    """Every rep's runs: at once with `--together` (`simultaneous`), else
    one after the other (`interleaved`)."""
    return (simultaneous if o.together else interleaved)(o, source, env, target)


def method(o):
    """How the reps ran, for a report's header."""
    if o.together:
        return ("%d reps, a rep's variants at once, each under its own smtp-source (start order rotated per rep); "
                "median first, every rep in brackets" % o.reps)
    return "%d reps, variants interleaved (order rotated per rep); median first, every rep in brackets" % o.reps


def stores(o):
    """Where the runs stored, for a report's header."""
    if o.fs == "fresh":
        return "stores: each run's on a new journaled ext4 (2 GiB loop file, bench/fresh_fs.py)"
    return "stores: on the work disk, under %s" % os.path.join(load.WORK, "maildir")


def store(o, name):
    """The directory a run keeps its files under: a fresh filesystem named
    `name` (`--fs fresh`), or None (the work disk)."""
    if o.fs == "fresh":
        return fresh_fs(os.path.join(load.WORK, "fs", load.RUN_ID, name))
    return contextlib.nullcontext()


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits):
    return "n/a" if x is None else "%.*f" % (digits, x)


def cell(rs, key, digits):
    values = [r[key] for r in rs]
    if len(values) == 1:
        return fmt(values[0], digits)
    return "%s (%s)" % (fmt(med(values), digits), ", ".join(fmt(v, digits) for v in values))


def pairs(results, wl, variant, baseline, key="cpu1k"):
    """(variant's, baseline's) `key` (CPU s per 1,000 messages, or its user
    or system part), rep by rep."""
    out = []
    for r in results:
        if r["wl"] == wl and r["target"] == variant:
            base = next((p for p in results if p["wl"] == wl and p["target"] == baseline and p["rep"] == r["rep"]),
                        None)
            if base and base.get(key) is not None and r.get(key) is not None:
                out.append((r[key], base[key]))
    return out


def median_ci(xs, rounds=2000):
    """A 95 % bootstrap interval of the median of `xs` (fixed seed: the
    same figures print the same interval)."""
    rng = random.Random(14)
    medians = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(rounds))
    return medians[int(rounds * 0.025)], medians[int(rounds * 0.975) - 1]


def ratio_cells(results, wl, variant, baseline):
    """The reps' median CPU-per-message ratio over `baseline`'s with its
    range, its 95 % interval, and the median extra ms per message."""
    paired = [(a, b) for a, b in pairs(results, wl, variant, baseline) if b]
    ratios = [a / b for a, b in paired]
    spread = " [%.2f, %.2f]" % (min(ratios), max(ratios)) if len(ratios) > 1 else ""
    ci = "%.2f-%.2f" % median_ci(ratios) if len(ratios) > 2 else "-"
    return fmt(med(ratios), 2) + spread, ci, fmt(med(a - b for a, b in paired), 4)
