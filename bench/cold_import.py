"""Cold start: a fresh interpreter importing each handler, and then serving its first request.

Each figure is the median of N fresh processes, measured inside the child with perf_counter
(interpreter start-up excluded), and reported as a ratio to a baseline measured in the same
run, because the machines are noisy and absolute milliseconds mean little.

- **import**: ``import app`` of each function, next to a bare ``import boto3``.
- **import + first request**: ``import app`` and its first invocation — the refresh function
  a guard run (``{"action": "guard"}``, token stored and fresh: it reads the apps secret and
  the store; timed without and with the WeChat probe, which a deployed guard makes every
  other minute, and the figure is the slower), the webhook a signed safe-mode text message
  (apps secret, dedup item in DynamoDB) — against a moto server and the WeChat stand-in
  this benchmark starts, on the SSM store as deployed by default. Baseline: ``import boto3``
  plus the one call every handler makes first, ``secretsmanager.get_secret_value`` of the
  apps secret.

    .venv/bin/python -m bench.cold_import [--runs 15]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from bench.harness import APPID, APPS_SECRET_ID, DEDUP_TABLE, ROOT, Figure, Services, quiet_stdout

TARGET = 1.3

IMPORT_CHILD = """
import sys, time
sys.path[:0] = {paths!r}
t0 = time.perf_counter()
{statement}
print((time.perf_counter() - t0) * 1000)
"""

FIRST_REQUEST_CHILD = """
import json, os, sys, time
sys.path[:0] = {paths!r}
t0 = time.perf_counter()
{statement}
print((time.perf_counter() - t0) * 1000)
"""

LAYER = str(ROOT / "layers" / "wxtoken")
# The children stand for Lambda's processes, whose runtime sets this (the address of its
# runtime API); wxtoken.coldstart acts on it.
IN_LAMBDA = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
IMPORTS = {
    "import boto3 (baseline)": ([], "import boto3"),
    "refresh_token handler": ([LAYER, str(ROOT / "functions" / "refresh_token")], "import app"),
    "webhook handler": ([LAYER, str(ROOT / "functions" / "webhook")], "import app"),
    # Opt-in tracing (wxtoken.observability): Tracer() imports the X-Ray SDK; LAMBDA_TASK_ROOT
    # makes powertools patch as it does in Lambda.
    "webhook handler with WXTOKEN_TRACING=true": (
        [LAYER, str(ROOT / "functions" / "webhook")],
        "import os; os.environ.update(WXTOKEN_TRACING='true', LAMBDA_TASK_ROOT='/var/task'); import app",
    ),
}

_CONTEXT = """
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "bench", 256, "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self):
        return 30000
"""
FIRST_REQUESTS = {
    "boto3 + get_secret_value (baseline)": (
        [],
        "import boto3\n"
        f"boto3.client('secretsmanager').get_secret_value(SecretId={APPS_SECRET_ID!r})['SecretString']",
    ),
    # A guard run asks WeChat whether it still accepts the stored token every
    # PROBE_PERIOD_SECONDS (120 s as deployed: every other run), which makes WeChat's HTTP
    # client and calls WeChat: both kinds of run are timed, and the figure is the slower.
    **{
        f"refresh_token: import + guard run{label}": (
            [LAYER, str(ROOT / "functions" / "refresh_token")],
            f"os.environ['PROBE_PERIOD_SECONDS'] = {period!r}\n"
            "import app\n"
            + _CONTEXT
            + "result = app.lambda_handler({'action': 'guard'}, Context())\n"
            + "assert result['failed'] == [] and result['skipped'], result",
        )
        for label, period in ((", no probe", "0"), (" with the probe", "60"))
    },
    "webhook: import + safe-mode message": (
        [LAYER, str(ROOT / "functions" / "webhook")],
        "import app\n"
        + _CONTEXT
        + "response = app.lambda_handler(json.loads(os.environ['BENCH_EVENT']), Context())\n"
        + "assert response['statusCode'] == 200, response",
    ),
}


@contextlib.contextmanager
def _compiled_like_the_build() -> Iterator[dict[str, str]]:
    """Children import wxtoken and the handlers from .pyc files, as the deployed layer and
    functions do: ``make build`` compiles them (checked-hash, Python 3.13), since Lambda
    cannot write a cache beside read-only code. Compiled here the same way, into
    ``__pycache__`` beside the sources (git ignores them; removed afterwards), and the
    children only read them (``PYTHONDONTWRITEBYTECODE``), as boto3 is read from the .pyc
    files pip wrote. So no figure times a compile the deployment does not do."""
    sources = [ROOT / "layers" / "wxtoken", ROOT / "functions"]
    before = {path for source in sources for path in source.rglob("__pycache__")}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", *map(str, sources)],
        check=True,
        capture_output=True,
    )
    try:
        yield {"PYTHONDONTWRITEBYTECODE": "1"}
    finally:
        for path in {path for source in sources for path in source.rglob("__pycache__")} - before:
            shutil.rmtree(path, ignore_errors=True)


def _run_child(code: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def measure_imports(runs: int) -> dict[str, float]:
    with _compiled_like_the_build() as compiled:
        env = {**os.environ, **compiled, **IN_LAMBDA, "WECHAT_APPS_SECRET_ID": "bench"}
        codes = {name: IMPORT_CHILD.format(paths=p, statement=s) for name, (p, s) in IMPORTS.items()}
        return _interleaved_children(codes, env, runs)


def measure_first_requests(runs: int) -> dict[str, float]:
    from bench.harness import AES_KEY, TOKEN
    from devtools.wechat.player import WeChatPlayer, apigw_event, text_xml
    from wxtoken.deadline import Deadline
    from wxtoken.refresh import RefreshRequest, Trigger
    from wxtoken.refresh.wiring import build_refresher

    with Services(redis=False) as services, _compiled_like_the_build() as compiled:
        services.reset(dedup_table=True)
        env = services.env("ssm", DEDUP_TABLE=DEDUP_TABLE, POWERTOOLS_LOG_LEVEL="INFO")
        # A fresh token in the store, so the guard run only reads.
        os.environ.update(env)
        with quiet_stdout():  # the refresher's log line and metrics
            refresher = build_refresher(services.settings("ssm"))
            report = refresher.run(RefreshRequest(Trigger.SCHEDULED, services.clock()), Deadline.after(30))
        assert report.refreshed == [APPID], report
        player = WeChatPlayer(APPID, TOKEN, AES_KEY)
        codes = {
            name: FIRST_REQUEST_CHILD.format(paths=p, statement=s) for name, (p, s) in FIRST_REQUESTS.items()
        }
        counter = iter(range(1_000_000))

        def child_env() -> dict[str, str]:
            # Each webhook run gets a new MsgId: a retry would be answered from the dedup table.
            query, body = player.message(text_xml("cold", msg_id=next(counter) + 1), encrypted=True)
            event = apigw_event("POST", f"/wechat/{APPID}", query, body)
            return {**os.environ, **env, **compiled, **IN_LAMBDA, "BENCH_EVENT": json.dumps(event)}

        return _interleaved_children(codes, child_env, runs)


def _interleaved_children(codes: dict[str, str], env: Any, runs: int) -> dict[str, float]:
    """Median ms of each child, runs interleaved; one warm-up each (.pyc files, as in a layer)."""
    environment = env if callable(env) else (lambda: env)
    for code in codes.values():
        _run_child(code, environment())
    samples: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(runs):
        for name, code in codes.items():
            samples[name].append(_run_child(code, environment()))
    return {name: statistics.median(values) for name, values in samples.items()}


def figures(runs: int = 9) -> list[Figure]:
    imports = measure_imports(runs)
    base = imports["import boto3 (baseline)"]
    worst_import = max(imports["refresh_token handler"], imports["webhook handler"]) / base
    rows = [
        Figure(
            "2a. cold start, import: handler / import boto3",
            f"{worst_import:.2f}x",
            f"<= {TARGET}x",
            worst_import <= TARGET,
            f"refresh {imports['refresh_token handler'] / base:.2f}x, webhook "
            f"{imports['webhook handler'] / base:.2f}x of import boto3 ({base:.0f} ms)"
            + "".join(
                f"; {name} {ms / base:.2f}x (opt-in, not in the figure)"
                for name, ms in imports.items()
                if "TRACING" in name
            ),
        )
    ]
    first = measure_first_requests(runs)
    base = first["boto3 + get_secret_value (baseline)"]
    refresh = max(first[name] for name in first if name.startswith("refresh_token")) / base
    webhook = first["webhook: import + safe-mode message"] / base
    rows.append(
        Figure(
            "2b. cold start, import + first request / boto3 + 1 call",
            f"{max(refresh, webhook):.2f}x",
            f"<= {TARGET}x",
            max(refresh, webhook) <= TARGET,
            f"refresh guard run {refresh:.2f}x (the slower of without and with the probe), "
            f"webhook safe-mode message {webhook:.2f}x of "
            f"import boto3 + get_secret_value ({base:.0f} ms), SSM store + DynamoDB dedup on moto",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--imports-only", action="store_true", help="skip the first-request figures")
    args = parser.parse_args()

    for title, measured in (
        ("import", measure_imports(args.runs)),
        *(() if args.imports_only else (("import + first request", measure_first_requests(args.runs)),)),
    ):
        baseline = None
        print(f"{title:44} {'median ms':>10} {'x base':>8}")
        for name, ms in measured.items():
            baseline = baseline or ms
            print(f"  {name:42} {ms:10.1f} {ms / baseline:8.2f}")


if __name__ == "__main__":
    main()
