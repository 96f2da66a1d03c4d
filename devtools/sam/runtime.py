"""The inside of one local Lambda container: imports a handler once, then runs invocations.

Started by :mod:`devtools.sam.host` as ``python -I -u lambda_runtime.py LAYER_DIR…``
with the function's environment (and nothing of the caller's), its code directory as the
working directory and ``_HANDLER`` naming the handler — what Lambda's Python runtime gets.
Like Lambda, it puts the code directory and then the layers on ``sys.path`` and imports the
handler's module by its own name (``app`` for ``app.lambda_handler``): one function per
process, so two functions' ``app.py`` never meet.

Protocol, one JSON object per line: requests ``{"event", "request_id", "deadline_ms"}`` on
stdin; answers ``{"type": "ready"|"init_error"|"result"|"error", …}`` on the original
stdout, which is kept private. The function's own stdout and stderr both go to stderr, its
log stream. Standard library only: it runs before (and next to) the function's imports.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any, TextIO


class LambdaContext:
    """The ``context`` a Python handler gets, with the remaining time of this invocation."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        region = env.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{self.function_name}"
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.aws_request_id = request_id
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


class _MarshalError(Exception):
    """The handler returned something that is not JSON (Lambda: Runtime.MarshalError)."""


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    # The shape Lambda returns for an unhandled exception.
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(_user_frames(exc)),
    }


def _user_frames(exc: BaseException) -> Any:
    """The traceback from the handler's frame on: this runtime's own frame is noise."""
    tb = exc.__traceback__
    return tb.tb_next if tb is not None and tb.tb_frame.f_code.co_filename == __file__ else tb


def _log_error(error: dict[str, Any], exc: BaseException) -> None:
    # What the Python runtime prints to the log stream for an unhandled exception.
    print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
    if error["stackTrace"]:
        print("Traceback (most recent call last):", file=sys.stderr)
        print("".join(error["stackTrace"]).rstrip("\n"), file=sys.stderr)


def _load_handler(spec: str) -> Any:
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)")
    module = importlib.import_module(module_name.replace("/", "."))
    return getattr(module, function_name)


def main() -> int:
    # The host stops this process by closing stdin; Ctrl-C in the terminal is the host's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path[:0] = [task_root, *sys.argv[1:]]
    channel: TextIO = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # print() and loggers on sys.stdout now write to the log stream

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message, separators=(",", ":")) + "\n")
        channel.flush()

    started = time.monotonic()
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except Exception as exc:
        error = _error(exc, "Runtime.ImportModuleError" if isinstance(exc, ImportError) else None)
        _log_error(error, exc)
        send({"type": "init_error", "error": error})
        return 1
    send({"type": "ready", "init_ms": round((time.monotonic() - started) * 1000, 1)})

    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], request["deadline_ms"])
        try:
            result = handler(request["event"], context)
            try:
                text = json.dumps(result)
            except (TypeError, ValueError) as exc:
                raise _MarshalError(f"Unable to marshal response: {exc}") from exc
        except Exception as exc:
            error = _error(exc, "Runtime.MarshalError" if isinstance(exc, _MarshalError) else None)
            error["requestId"] = context.aws_request_id
            _log_error(error, exc)
            sys.stdout.flush()
            send({"type": "error", "error": error})
            continue
        sys.stdout.flush()
        channel.write('{"type":"result","payload":' + text + "}\n")
        channel.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
