"""``sam local invoke`` without Docker: run one function of template.yaml once, locally.

    python -m devtools.invoke RefreshTokenFunction -e events/force_all.json [--env-vars events/env.json]

Same flags as ``sam local invoke``: the function's logical id, ``-e/--event`` (a file, or
``-`` for stdin; none = ``{}``), ``-n/--env-vars`` (``{"<LogicalId>": {...}, "Parameters":
{...}}``; like sam, only variables the template declares for the function are set),
``--parameter-overrides`` and ``-t/--template``. The function runs in a fresh process (a
cold start) with its environment from the template; its logs go to stderr, its result (or
Lambda's error object) to stdout as JSON. The exit status is 0 when the function returned,
1 when it raised (sam exits 0 either way; a script wants to know).

It runs against the local AWS and WeChat of a running ``make local`` (found through its
state file), so the function sees the same secret, store and stand-in; with none running
(or ``--standalone``) it starts its own for this one invocation. There is no container, so
``host.docker.internal`` in an env-vars value means this machine: 127.0.0.1.

By default the function is also pointed at that local AWS (``AWS_ENDPOINT_URL``), as make
local's functions are. ``--sam-env`` builds the environment as ``sam local invoke`` does
instead (:func:`sam_environment`): what the template declares, from the shell and
``--env-vars``, and nothing more; it checks that events/env.json alone takes the functions to
the local AWS, as it must for sam in Docker (docs/sam-local.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devtools.sam.host import Console, FunctionContainer
from devtools.sam.local_system import (
    DEFAULT_STATE_FILE,
    TEMPLATE,
    LocalError,
    LocalOptions,
    LocalSystem,
    container_environment,
    lambda_environment,
    parse_overrides,
    read_state,
)
from devtools.sam.template import Function, SamTemplate, TemplateError

DOCKER_HOST = "host.docker.internal"


def load_event(source: str | None) -> Any:
    if source is None:
        return {}
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else {}
    except OSError as exc:
        raise LocalError(f"cannot read the event {source}: {exc.strerror}") from None
    except ValueError as exc:
        raise LocalError(f"the event {source} is not JSON: {exc}") from None


def load_env_vars(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        env_vars = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LocalError(f"cannot read --env-vars {path}: {exc}") from None
    if not isinstance(env_vars, dict):
        raise LocalError(f'--env-vars {path} must be {{"<LogicalId>": {{...}}, "Parameters": {{...}}}}')
    return env_vars


def pick_function(functions: Mapping[str, Function], name: str | None) -> Function:
    if name is None and len(functions) == 1:
        return next(iter(functions.values()))
    for function in functions.values():
        if name in (function.logical_id, function.function_name):
            return function
    known = ", ".join(functions)
    raise LocalError(
        f"{'name a function' if name is None else f'no function {name}'}: the template has {known}"
    )


def sam_overrides(function: Function, env_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The values an env-vars file gives ``function``, as sam picks them: the ``Parameters``
    section, overridden by the first section named after the function (its logical id, else its
    function name). samcli/commands/local/lib/local_lambda.py, LocalLambdaRunner._make_env_vars.
    """
    own = env_vars.get(function.logical_id) or env_vars.get(function.function_name) or {}
    return {**(env_vars.get("Parameters") or {}), **own}


def apply_env_vars(function: Function, environment: dict[str, str], env_vars: Mapping[str, Any]) -> list[str]:
    """Override ``environment`` from an env-vars file, as sam does; returns notes to show.

    Like sam, only variables the template declares for the function are set; the rest are
    ignored (with a note here, silently in sam). A value naming ``host.docker.internal`` (a
    container's way to this machine) means 127.0.0.1: nothing runs in a container here.
    """
    notes = []
    for name, raw in sam_overrides(function, env_vars).items():
        if name not in function.environment:
            notes.append(f"{name}: the template declares no such variable for {function.logical_id}; ignored")
            continue
        value = _stringified(raw).replace(DOCKER_HOST, "127.0.0.1")
        if value != function.environment[name]:
            notes.append(f"{name}={value} (template: {function.environment[name] or '(empty)'})")
        environment[name] = value
    return notes


def sam_environment(
    function: Function, env_vars: Mapping[str, Any], shell: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The environment ``sam local invoke`` gives the function's container, and notes.

    samcli/local/lambdafn/env_vars.py, EnvironmentVariables.resolve: sam's own ``AWS_*``
    variables, then every variable the template declares, its template value replaced by the
    shell's variable of that name, replaced by the env-vars file's. Nothing else: unlike
    :func:`lambda_environment`, no endpoint of the local AWS is added, so the function reaches
    it only if the template declares ``AWS_ENDPOINT_URL`` and env-vars sets it.
    """
    environment = container_environment(function)
    environment["AWS_SAM_LOCAL"] = "true"
    notes = []
    for name, value in function.environment.items():
        environment[name] = shell.get(name, value)
        if name in shell:
            notes.append(f"{name}: from the shell (sam takes a declared variable from it)")
    return environment, notes + apply_env_vars(function, environment, env_vars)


def _stringified(raw: Any) -> str:
    """sam's EnvironmentVariables._stringify_value: null, lists and objects become ""."""
    if raw is None or isinstance(raw, dict | list):
        return ""
    return str(raw).lower() if isinstance(raw, bool) else str(raw)


def _local_port(env_vars: Mapping[str, Any], function_id: str | None, variable: str) -> int:
    """The port env-vars points ``variable`` (a URL) at on this machine (0: none)."""
    sections = [env_vars.get("Parameters") or {}, env_vars.get(function_id or "") or {}]
    value = next((str(s[variable]) for s in reversed(sections) if s.get(variable)), "")
    split = urlsplit(value.replace(DOCKER_HOST, "127.0.0.1"))
    return (split.port or 0) if split.hostname in ("127.0.0.1", "localhost") else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.invoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("function_id", nargs="?", metavar="FUNCTION_LOGICAL_ID")
    parser.add_argument("-e", "--event", help="JSON event file, or - for stdin (default: {})")
    parser.add_argument("-n", "--env-vars", type=Path, help="JSON file of environment variable overrides")
    parser.add_argument(
        "--parameter-overrides", action="append", default=[], metavar="'KEY=VALUE …'", help="as sam's"
    )
    parser.add_argument("-t", "--template", type=Path, default=TEMPLATE)
    parser.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE, help="a running make local's")
    parser.add_argument("--standalone", action="store_true", help="do not use a running make local")
    parser.add_argument(
        "--sam-env",
        action="store_true",
        help="the environment exactly as sam local invoke builds it: the template's declared variables "
        "from the shell and --env-vars, and no local AWS endpoint unless they set AWS_ENDPOINT_URL",
    )
    parser.add_argument(
        "--raw-logs", action="store_true", help="print the function's JSON log lines as they are"
    )
    args = parser.parse_args(argv)

    console = Console(sys.stderr, raw_logs=args.raw_logs)
    system: LocalSystem | None = None
    try:
        event = load_event(args.event)
        env_vars = load_env_vars(args.env_vars)
        overrides = parse_overrides(args.parameter_overrides)
        state = None if args.standalone else read_state(args.state_file)
        if state is not None:
            wechat = state["wechat"]
            label = "SANDBOX — not WeChat" if wechat["sandbox"] else "the REAL WeChat API"
            console.say(
                "invoke",
                f"using the running make local (pid {state['pid']}): AWS {state['aws_endpoint']}, "
                f"WeChat {wechat['api_base']} ({label})",
            )
            template = SamTemplate.load(
                args.template.resolve(),
                parameter_overrides={**state["parameters"], **overrides},
                physical_ids=state["physical_ids"],
                stack_name=state["stack_name"],
                region=state["region"],
            )
            aws_endpoint, lambda_endpoint = state["aws_endpoint"], state["lambda_endpoint"]
        else:
            options = LocalOptions.from_environ(
                template=args.template.resolve(),
                parameter_overrides=overrides,
                lambda_port=0,
                # Where env-vars sends the function, when that is this machine.
                aws_port=_local_port(env_vars, args.function_id, "AWS_ENDPOINT_URL") if args.sam_env else 0,
                wechat_port=_local_port(env_vars, args.function_id, "WECHAT_API_BASE"),
            )
            system = LocalSystem(options, console)
            label = "SANDBOX — not WeChat" if system.sandbox else "the REAL WeChat API"
            console.say(
                "invoke", f"no make local running: a local AWS and WeChat ({label}) for this invocation"
            )
            system.start(warm=False)
            assert system.template is not None
            template = system.template
            aws_endpoint, lambda_endpoint = system.aws_endpoint, system.lambda_endpoint
        function = pick_function(template.functions(), args.function_id)
        if args.sam_env:
            environment, notes = sam_environment(function, env_vars, os.environ)
        else:
            environment = lambda_environment(
                function, aws_endpoint=aws_endpoint, lambda_endpoint=lambda_endpoint
            )
            notes = apply_env_vars(function, environment, env_vars)
            if environment.get("AWS_ENDPOINT_URL", "").rstrip("/") != aws_endpoint:
                # env.json names where a container finds make local's AWS (host.docker.internal,
                # the default port); without --sam-env the function runs here, next to the local
                # AWS actually serving (make local --aws-port may have moved it): use that one.
                notes.append(f"AWS_ENDPOINT_URL from --env-vars replaced by the local AWS at {aws_endpoint}")
                environment["AWS_ENDPOINT_URL"] = aws_endpoint
        for note in notes:
            console.say("env-vars", note)
        endpoint = environment.get("AWS_ENDPOINT_URL", "")
        if args.sam_env and endpoint.rstrip("/") != aws_endpoint:
            where = f"AWS_ENDPOINT_URL={endpoint}" if endpoint else "no AWS_ENDPOINT_URL (real AWS)"
            console.say("env-vars", f"warning: {where}, but the local AWS is at {aws_endpoint}")
        base = environment.get("WECHAT_API_BASE")
        if (
            system is not None
            and system.sandbox
            and base is not None
            and not base.startswith(system.wechat_base)
        ):
            console.say(
                "env-vars", f"warning: WECHAT_API_BASE={base}, but the stand-in is at {system.wechat_base}"
            )
        container = FunctionContainer(function, environment, console)
        try:
            result = container.invoke(event)
        finally:
            container.stop()
        init = f"  Init Duration: {result.init_ms:.2f} ms" if result.init_ms is not None else ""
        console.say(
            "",
            f"REPORT RequestId: {result.request_id}  Duration: {result.duration_ms:.2f} ms  "
            f"Memory Size: {function.memory_size} MB{init}",
        )
        print(json.dumps(result.payload, ensure_ascii=False), flush=True)
        return 0 if result.ok else 1
    except (LocalError, TemplateError) as exc:
        console.say("invoke", f"error: {exc}")
        return 2
    finally:
        if system is not None:
            system.stop()
        gc.freeze()  # spare the exit a last collection over moto's many objects


if __name__ == "__main__":
    sys.exit(main())
