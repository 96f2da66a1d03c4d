"""``make bench``: every benchmark figure, one table, each against its target.

Timings are ratios measured side by side in this run; counts are counts. Nothing here is
asserted by the tests (machines are noisy); a missed target is reported, and the exit
status is 0 either way unless ``--strict`` is given.

    .venv/bin/python -m bench.run_all [--quick] [--strict]
        [--only webhook,dedup,cold,reads,storm,quota,platform]

The platform section is Open Platform's scale run at its quick size (500 authorizers, 3
simulated hours); the full one (5,000 authorizers, 24 hours) is ``make bench-platform``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from bench import (
    cold_import,
    dedup_roundtrip,
    open_platform_scale,
    quota,
    storm,
    token_reads,
    webhook_roundtrip,
)
from bench.harness import Figure, print_table


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and cold starts (noisier)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", default="webhook,dedup,cold,reads,storm,quota,platform")
    args = parser.parse_args()

    rounds, runs = (5, 5) if args.quick else (9, 9)
    sections: dict[str, Callable[[], list[Figure]]] = {
        "webhook": lambda: webhook_roundtrip.figures(rounds),
        "dedup": lambda: dedup_roundtrip.figures(rounds),
        "cold": lambda: cold_import.figures(runs),
        "reads": token_reads.figures,
        "storm": storm.figures,
        "quota": quota.figures,
        "platform": open_platform_scale.figures,
    }
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(sections)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {sorted(sections)}")

    figures: list[Figure] = []
    for name in wanted:
        started = time.monotonic()
        print(f"running {name} …", file=sys.stderr, flush=True)
        figures += sections[name]()
        print(f"  {name} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print()
    print_table(figures)
    missed = [f for f in figures if f.met is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
