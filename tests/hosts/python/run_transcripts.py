"""Runs the transcript corpus through the component in wasmtime-py, fed in
every plan, and prints one line per transcript and `N passed, M failed`.

    python tests/hosts/python/run_transcripts.py --component FILE.wasm --transcripts DIR
"""

from __future__ import annotations

import argparse
import sys

from smtphost import runner, transcript
from smtphost.component import LoadedComponent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--component", required=True, metavar="FILE.wasm")
    parser.add_argument("--transcripts", required=True, metavar="DIR")
    args = parser.parse_args()

    component = LoadedComponent(args.component)
    corpus = transcript.load_corpus(args.transcripts)
    if not corpus:
        # An empty corpus passing would prove nothing.
        print(f"no *.txt transcripts in {args.transcripts}", file=sys.stderr)
        return 1
    passed = failed = 0
    for t in corpus:
        plans = t.feed_plans()
        failure = None
        for plan, segments in plans:
            try:
                runner.check(t, *runner.run(component, t, segments))
            except Exception as err:  # noqa: BLE001 - any failure is this transcript's
                failure = f"[{plan}] {type(err).__name__}: {err}"
                break  # one plan's failure per transcript is enough to read
        if failure:
            failed += 1
            print(f"FAIL {t.name} " + failure.replace("\n", "\n     "))
        else:
            passed += 1
            print(f"ok   {t.name} ({len(plans)} plans)")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
