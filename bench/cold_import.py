"""Cold start: a fresh interpreter importing each handler module, next to a bare `import boto3`.

Run with `make bench-cold` (or `.venv/bin/python bench/cold_import.py`). Each figure is the
median of N fresh processes, measured inside the child with perf_counter around the import
(interpreter start-up excluded), and reported as a ratio to `import boto3` measured in the
same run, because the machines are noisy and absolute milliseconds mean little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]

CHILD = """
import sys, time
sys.path[:0] = {paths!r}
t0 = time.perf_counter()
{statement}
print((time.perf_counter() - t0) * 1000)
"""

SUBJECTS = {
    "import boto3 (baseline)": ([], "import boto3"),
    "refresh_token handler": (
        [str(ROOT / "layers" / "wxtoken"), str(ROOT / "functions" / "refresh_token")],
        "import app",
    ),
    "webhook handler": (
        [str(ROOT / "layers" / "wxtoken"), str(ROOT / "functions" / "webhook")],
        "import app",
    ),
}


def measure(paths: list[str], statement: str, runs: int) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0", "WECHAT_APPS_SECRET_ID": "bench"}
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD.format(paths=paths, statement=statement)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # one warm-up each, so .pyc files exist as they do in a deployed layer
    for paths, statement in SUBJECTS.values():
        measure(paths, statement, 1)
    baseline = None
    print(f"{'module':32} {'median ms':>10} {'x boto3':>8}")
    for name, (paths, statement) in SUBJECTS.items():
        ms = measure(paths, statement, args.runs)
        baseline = baseline or ms
        print(f"{name:32} {ms:10.1f} {ms / baseline:8.2f}")


if __name__ == "__main__":
    main()
