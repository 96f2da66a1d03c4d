"""``make local``: template.yaml running on this machine, no Docker and no AWS account.

    python -m devtools.local [--host 127.0.0.1] [--port 3100] [--once] [--parameter-overrides Key=Value …]

Everything it runs is read from template.yaml (:mod:`devtools.sam.template`): the
functions (CodeUri, Handler, Timeout, layers) with their environment, the HTTP API routes
(served on ``--port`` like ``sam local start-api``, each request a payload v2 event), and
the schedules (fired once at start, then at their ``rate()``, with their Input). Around
them (:mod:`devtools.sam.local_system`): moto as the local AWS, the WeChat stand-in unless
``WECHAT_APPID``/``WECHAT_APPSECRET`` are set, Redis when ``TOKEN_STORE=redis``.

Every service listens on ``--host`` (127.0.0.1): ``--host 0.0.0.0`` lets ``sam local`` in
Docker reach the local AWS and the stand-in (docs/sam-local.md), and anyone on the network
too. The default ports keep off sam's own (3000, 3001); a port in use fails the start-up,
naming each one, rather than moving a service where events/env.json does not look.

Ctrl-C or SIGTERM stops every server, thread and process it started, and exits 0.
``--once`` starts everything, fires the schedules, checks the token API and an encrypted
message through HTTP, then stops: a smoke test of the whole loop.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from devtools.sam.api_gateway import LOCAL_IAM_USER_ARN, HttpApiServer
from devtools.sam.host import Console, Invocation
from devtools.sam.local_system import (
    DEFAULT_PORTS,
    DEFAULT_STATE_FILE,
    LOOPBACK,
    ROOT,
    TEMPLATE,
    LocalError,
    LocalOptions,
    LocalSystem,
    parse_overrides,
    ports_in_use,
    redacted_url,
    remove_state,
    write_state,
)
from devtools.sam.template import Function, Schedule, TemplateError


class Stopping(Exception):
    """Raised between start-up steps once Ctrl-C / SIGTERM arrived."""


@dataclass(frozen=True, slots=True)
class _Job:
    function: Function
    schedule: Schedule


class Scheduler:
    """Fires each schedule's payload at the function, once now and then every period.

    Runs in one thread; a run that overlaps the next firing delays it (nothing is queued).
    Deployed, Lambda retries a failed asynchronous run twice and then sends it to the
    on-failure destination; locally the failure is printed and the next firing comes.
    """

    def __init__(self, system: LocalSystem, console: Console, stop: threading.Event) -> None:
        self._system = system
        self._console = console
        self._stop = stop
        self.jobs = [_Job(f, s) for f in system.functions.values() for s in f.schedules]
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def fire(self, job: _Job) -> Invocation:
        payload = job.schedule.payload(datetime.now(UTC))
        result = self._system.invoke(job.function.logical_id, payload)
        target = f"{job.schedule.name} {job.schedule.expression} → {job.function.logical_id}"
        if result.ok:
            self._console.say("schedule", f"{target}: {result.summary} {json.dumps(result.payload)}")
        else:
            self._console.say(
                "schedule",
                f"{target}: {result.summary}: {str(result.payload.get('errorMessage'))[:500]}\n"
                "(deployed, Lambda retries a failed scheduled run twice, then sends it to the on-failure "
                "queue; here the next firing comes on schedule)",
            )
        return result

    def fire_all(self) -> list[Invocation]:
        return [self.fire(job) for job in self.jobs if not self._stop.is_set()]

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        now = time.monotonic()
        due = {id(job): now + job.schedule.period_seconds for job in self.jobs}
        while self.jobs:
            job = min(self.jobs, key=lambda j: due[id(j)])
            if self._stop.wait(max(due[id(job)] - time.monotonic(), 0)):
                return
            self.fire(job)
            now = time.monotonic()
            while due[id(job)] <= now:  # a missed firing is skipped, as with no flexible window
                due[id(job)] += job.schedule.period_seconds


def _banner(system: LocalSystem, api: HttpApiServer) -> str:
    app = system.app
    lines = ["", "wxtoken local — template.yaml on this machine (no Docker, no AWS account)", ""]
    if system.sandbox:
        lines += [
            f"  WeChat API    SANDBOX — not WeChat: the stand-in at {system.wechat_base}",
            f"  sample app    appid {app.appid}  AppSecret {app.app_secret}",
            f"                Token {app.token}  EncodingAESKey {app.encoding_aes_key}",
        ]
    else:  # the app's real Token and EncodingAESKey stay off the screen (and its logs)
        lines += [
            f"  WeChat API    the REAL WeChat API at {system.wechat_base}, app {app.appid}",
            "                Token and EncodingAESKey: WECHAT_TOKEN and WECHAT_ENCODING_AES_KEY (not shown)",
        ]
    if system.options.token_store == "redis":
        store = f"Redis at {redacted_url(system.redis_url or '')}"
    else:
        store = f"SSM in the local AWS, under {_prefix(system)}/ (TOKEN_STORE=redis make local for Redis)"
    lines += [
        f"  token store   {store}",
        f"  local AWS     moto at {system.aws_endpoint} (Secrets Manager, SSM, DynamoDB; fake keys)",
        f"  Lambda API    {system.lambda_endpoint} (REFRESH_FUNCTION_NAME; as sam local start-lambda)",
        "",
        "  functions (each in a process of its own, with its environment from the template):",
    ]
    for function in system.functions.values():
        relative = (
            function.code_uri.relative_to(ROOT)
            if function.code_uri.is_relative_to(ROOT)
            else function.code_uri
        )
        lines.append(
            f"    {function.logical_id:<22} {relative}/ {function.handler}  timeout {function.timeout}s"
        )
    lines.append("  schedules (fired once at start, then at their rate):")
    for function in system.functions.values():
        for schedule in function.schedules:
            target = f"{schedule.name:<10} {schedule.expression:<18} → {function.logical_id}"
            lines.append(f"    {target} {schedule.input or ''}")
    lines.append("  routes:")
    for route in api.routes:
        auth = "  (AWS_IAM: locally, a fake IAM identity)" if route.authorizer == "AWS_IAM" else ""
        lines.append(f"    {route.method:<5} {api.url}{route.path:<18} → {route.function}{auth}")
    lines += [
        "",
        "Try it (in another terminal):",
        f"  curl {api.url}/token/{app.appid}",
        '  make play MSG="hello"                    # a signed, encrypted text message; prints the reply',
        "  make invoke FN=RefreshTokenFunction EVENT=events/force_all.json",
        f"  {_read_command(system)}",
        "",
    ]
    if any(route.authorizer == "AWS_IAM" for route in api.routes):
        lines.append(
            f"note: routes with AWS_IAM auth are not checked locally; requests get {LOCAL_IAM_USER_ARN}. "
            "Deployed, they need SigV4."
        )
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def _read_command(system: LocalSystem) -> str:
    """A shell command that reads the app's stored token from the store in use."""
    if system.options.token_store == "redis":
        from wxtoken.store.redis_store import record_key

        key = record_key(system.app.appid, "access_token")
        return f"redis-cli -u {redacted_url(system.redis_url or '')} get '{key}'"
    return (
        f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --region us-east-1 --endpoint-url "
        f"{system.aws_endpoint} ssm get-parameter --with-decryption --name "
        f"{_prefix(system)}/{system.app.appid}/access_token"
    )


def _prefix(system: LocalSystem) -> str:
    function = next(iter(system.functions.values()), None)
    return function.environment.get("TOKEN_PARAMETER_PREFIX", "/wxtoken") if function else "/wxtoken"


def _self_check(system: LocalSystem, api: HttpApiServer, console: Console) -> bool:
    """The token API answers, and an encrypted text message gets a 200 whose reply, if any,
    decrypts for the app (sandbox app). What the reply says is the user's handlers.py's
    business: the shipped example echoes, a replaced one may answer ``success``."""
    from devtools.wechat.exchange import send, token
    from devtools.wechat.player import WeChatPlayer, text_xml

    ok = True
    answer = token(api.url, system.app.appid)
    has_token = answer.status == 200 and "access_token" in json.loads(answer.body or "{}")
    console.say(
        "check", f"GET /token/{system.app.appid} → {answer.status}: {'ok' if has_token else answer.body}"
    )
    ok &= has_token
    if system.sandbox:
        player = WeChatPlayer(system.app.appid, system.app.token, system.app.encoding_aes_key)
        message = "hello from make local --once"
        exchange = send(api.url, player, text_xml(message, msg_id=time.time_ns() // 1000), encrypted=True)
        fields = exchange.reply_fields if exchange.status == 200 else {}
        answered = exchange.status == 200 and (exchange.body == "success" or bool(fields))
        if fields.get("Content") == message:
            verdict = "echoed"
        elif answered:
            verdict = f"answered ({fields.get('MsgType') or 'success'}, from your handlers.py)"
        else:
            verdict = exchange.body
        console.say("check", f"encrypted text message → {exchange.status}: {verdict}")
        ok &= answered
    return ok


def _check_where_it_listens(
    args: argparse.Namespace, system: LocalSystem, console: Console, ports: dict[str, int]
) -> None:
    """Before anything starts: every port free (each taken one named with its flag), and a
    real app never served beyond this machine."""
    taken = ports_in_use(args.host, ports | ({"wechat": args.wechat_port} if system.sandbox else {}))
    if taken:
        raise LocalError(
            f"in use on {args.host}: {', '.join(taken)}. Is another make local or sam local running? "
            "Stop it, or move each one, e.g. "
            "make local LOCAL_ARGS='--port 3200 --aws-port 4567 --wechat-port 8082'"
        )
    if args.host not in LOOPBACK and not system.sandbox:
        # The token API checks no IAM here and the local AWS takes any key: on the network,
        # anyone could read the real app's access token and, from the secret, its AppSecret.
        raise LocalError(
            f"--host {args.host} with a real app (WECHAT_APPID, WECHAT_APPSECRET) would hand "
            "its access token (GET /token) and its AppSecret (the local AWS takes any key) to "
            "anyone on the network: use the sandbox with --host, or the real app on 127.0.0.1"
        )
    if args.host not in LOOPBACK:
        console.say(
            "local",
            f"warning: --host {args.host}: the fake AWS (any key works), the WeChat stand-in, the API "
            "and any Redis started here answer everyone who reaches this machine on the network",
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.local", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="where every service listens (default: 127.0.0.1); 0.0.0.0 lets Docker containers "
        "(sam local) reach them, and exposes the fake AWS and WeChat to your network",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORTS["api"],
        help=f"HTTP API port (default: {DEFAULT_PORTS['api']})",
    )
    parser.add_argument(
        "--lambda-port", type=int, help=f"Lambda Invoke API (default: --port + 1, {DEFAULT_PORTS['lambda']})"
    )
    parser.add_argument("--aws-port", type=int, default=DEFAULT_PORTS["aws"], help="the local AWS (moto)")
    parser.add_argument(
        "--wechat-port", type=int, default=DEFAULT_PORTS["wechat"], help="the WeChat stand-in"
    )
    parser.add_argument("-t", "--template", type=Path, default=TEMPLATE)
    parser.add_argument(
        "--parameter-overrides", action="append", default=[], metavar="'KEY=VALUE …'", help="as sam's"
    )
    parser.add_argument(
        "--state-file", type=Path, default=DEFAULT_STATE_FILE, help="where invoke/play find us"
    )
    parser.add_argument(
        "--raw-logs", action="store_true", help="print the functions' JSON log lines as they are"
    )
    parser.add_argument("--once", action="store_true", help="start, fire the schedules, self-check, stop")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def check() -> None:
        if stop.is_set():
            raise Stopping

    console = Console(raw_logs=args.raw_logs)
    started = time.monotonic()
    system: LocalSystem | None = None
    api: HttpApiServer | None = None
    scheduler: Scheduler | None = None
    try:
        overrides = parse_overrides(args.parameter_overrides)
        lambda_port = args.lambda_port if args.lambda_port is not None else args.port and args.port + 1
        options = LocalOptions.from_environ(
            template=args.template.resolve(),
            parameter_overrides=overrides,
            aws_port=args.aws_port,
            lambda_port=lambda_port,
            wechat_port=args.wechat_port,
            host=args.host,
        )
        system = LocalSystem(options, console)
        _check_where_it_listens(
            args, system, console, {"api": args.port, "lambda": lambda_port, "aws": args.aws_port}
        )
        if system.sandbox:
            console.say(
                "local",
                "WeChat: SANDBOX — not WeChat (set WECHAT_APPID and WECHAT_APPSECRET for the real API)",
            )
        else:
            console.say(
                "local",
                f"WeChat: the REAL API for {system.app.appid}. Each refresh mints a new access_token and "
                "retires the previous one 5 minutes later for every other program using this app.",
            )
        try:  # bound first: a taken port fails at once, not after the start-up
            api = HttpApiServer([], system.invoke, console, host=args.host, port=args.port)
        except OSError as exc:
            raise LocalError(
                f"cannot listen on {args.host}:{args.port} ({exc.strerror}): is another make local or "
                "sam local start-api running? Or pick a port: make local LOCAL_ARGS='--port 3005'"
            ) from None
        system.start(check=check)
        api.routes = [route for function in system.functions.values() for route in function.routes]
        api.start()
        scheduler = Scheduler(system, console, stop)
        scheduler.fire_all()
        check()
        scheduler.start()
        console.say("", _banner(system, api))
        write_state(args.state_file, system.state(api_url=api.url))
        console.say("local", f"ready in {time.monotonic() - started:.1f} s")
        if args.once:
            return 0 if _self_check(system, api, console) else 1
        while not stop.wait(0.5):
            pass
        return 0
    except Stopping:
        return 0
    except (LocalError, TemplateError) as exc:
        console.say("local", f"error: {exc}")
        return 1
    finally:
        stop.set()
        console.say("local", "stopping …")
        if api is not None:
            api.stop()
        if system is not None:
            system.stop()  # ends a run the scheduler may be waiting for
        if scheduler is not None:
            scheduler.join()
        remove_state(args.state_file)
        console.say("local", "stopped")
        # Everything is stopped; spare the exit a last collection over moto's many objects
        # (2 s of a 3 s shutdown otherwise).
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
