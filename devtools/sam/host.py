"""Local Lambda without containers: one warm process per function, and the Invoke API.

:class:`FunctionContainer` runs a function in a process of its own (see
:mod:`devtools.sam.runtime`), started with exactly the function's environment, as
Lambda starts a container: the two functions' environments and module-level state never
mix, and each reads its settings once, at its cold start. Invocations of one function are
served one at a time, as by one warm Lambda container; a crashed or timed-out process is
replaced on the next invocation (a new cold start).

:class:`LambdaApiServer` answers Lambda's ``Invoke`` API (what ``sam local start-lambda``
does), so boto3 code invoking a function by name (``REFRESH_FUNCTION_NAME``) reaches it
through ``AWS_ENDPOINT_URL_LAMBDA``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self, TextIO
from urllib.parse import unquote

from devtools.sam.template import Function

RUNTIME: Final = Path(__file__).with_name("runtime.py")
INIT_TIMEOUT_SECONDS: Final = 10.0  # Lambda's init phase limit
STOP_GRACE_SECONDS: Final = 3.0
# Keys every powertools log line carries; the compact rendering leaves them out.
_STANDARD_LOG_KEYS: Final = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "sampling_rate",
        "correlation_id",
        "exception",
        "exception_name",
        "stack_trace",
    }
)


class Console:
    """Where the local loop's lines go, one at a time, each tagged with its source.

    Function log lines that are powertools JSON are shown compactly (``LEVEL message
    key=value …``) unless ``raw_logs``.
    """

    def __init__(self, stream: TextIO | None = None, *, raw_logs: bool = False) -> None:
        self._stream = stream or sys.stdout
        self._raw_logs = raw_logs
        self._lock = threading.Lock()

    def say(self, tag: str, text: str = "") -> None:
        with self._lock:
            for line in text.splitlines() or [""]:
                self._stream.write(f"[{tag}] {line}\n" if tag else f"{line}\n")
            self._stream.flush()

    def function_log(self, function: str, line: str) -> None:
        self.say(function, line if self._raw_logs else render_log_line(line))


def render_log_line(line: str) -> str:
    """A powertools JSON log line as ``LEVEL message key=value …`` (other lines as they are)."""
    if not line.startswith("{"):
        return line
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if isinstance(record, dict) and isinstance(record.get("_aws"), dict):
        return _render_metrics(record)
    if not isinstance(record, dict) or "message" not in record:
        return line
    extra = " ".join(
        f"{key}={json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}"
        for key, value in record.items()
        if key not in _STANDARD_LOG_KEYS
    )
    text = f"{record.get('level', ''):<7} {record['message']}" + (f"  {extra}" if extra else "")
    if record.get("exception"):
        text += "\n" + str(record["exception"])
    return text


def _render_metrics(record: dict[str, Any]) -> str:
    """A CloudWatch embedded-metric-format line as ``METRIC Name=value unit … (dimensions)``."""
    directives = record["_aws"].get("CloudWatchMetrics") or []
    metrics = [m for d in directives for m in d.get("Metrics") or []]
    dimensions = {n for d in directives for group in d.get("Dimensions") or [] for n in group} - {"service"}

    def value(name: str) -> str:
        raw = record.get(name)
        values = raw if isinstance(raw, list) else [raw]
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    shown = " ".join(f"{m['Name']}={value(m['Name'])}{_UNITS.get(m.get('Unit', ''), '')}" for m in metrics)
    where = " ".join(f"{name}={record.get(name)}" for name in sorted(dimensions))
    return f"{'METRIC':<7} {shown}" + (f"  ({where})" if where else "")


_UNITS: Final = {"Milliseconds": " ms", "Seconds": " s", "Count": "", "Percent": " %", "Bytes": " B"}


@dataclass(frozen=True, slots=True)
class Invocation:
    """One invocation's outcome: the handler's result, or Lambda's error object."""

    function: str
    request_id: str
    ok: bool
    payload: Any
    duration_ms: float
    init_ms: float | None = None  # set when this invocation had a cold start

    @property
    def summary(self) -> str:
        outcome = "ok" if self.ok else f"{self.payload.get('errorType', 'Error')}"
        cold = f" (cold start {self.init_ms:.0f} ms)" if self.init_ms is not None else ""
        return f"{outcome} in {self.duration_ms:.0f} ms{cold}"


class FunctionContainer:
    """One warm process running ``function`` with ``environment`` (and nothing else)."""

    def __init__(self, function: Function, environment: dict[str, str], console: Console) -> None:
        self.function = function
        self.environment = environment
        self._console = console
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> float:
        """Start the process and run its init (imports); returns the init time in ms.

        Raises :class:`FunctionInitError` with Lambda's error object if the init failed.
        """
        with self._lock:
            return self._start()

    def _start(self) -> float:
        self._kill()
        # A queue per process: a dead process's reader must not answer for the next one.
        messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._messages = messages
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 (this interpreter, our runtime, the template's layers)
            [sys.executable, "-I", "-u", str(RUNTIME), *map(str, self.function.layers)],
            cwd=self.function.code_uri,
            env=self.environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            # Its own session: Ctrl-C in the terminal stops the host, which then stops this.
            start_new_session=True,
        )
        self._process = process
        self._readers = [
            threading.Thread(target=self._read_answers, args=(process, messages), daemon=True),
            threading.Thread(target=self._read_logs, args=(process,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        message = self._next_message(INIT_TIMEOUT_SECONDS)
        if message is None or message.get("type") != "ready":
            self._kill()
            error = (message or {}).get("error") or {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"the process exited or hung in its init ({INIT_TIMEOUT_SECONDS:.0f} s)",
            }
            raise FunctionInitError(error)
        return float(message.get("init_ms", (time.monotonic() - started) * 1000))

    def invoke(self, event: Any) -> Invocation:
        """Run the handler on ``event`` in this container (cold-starting it if needed)."""
        request_id = str(uuid.uuid4())
        with self._lock:
            if self._stopped:
                return self._failed(request_id, "Runtime.Stopped", "the local loop is stopping", 0.0)
            init_ms = None
            if not self._running():
                try:
                    init_ms = self._start()
                except FunctionInitError as exc:
                    return self._failed(request_id, exc.error["errorType"], exc.error["errorMessage"], 0.0)
            process = self._process
            assert process is not None
            assert process.stdin is not None
            timeout = float(self.function.timeout)
            started = time.monotonic()
            request = {
                "event": event,
                "request_id": request_id,
                "deadline_ms": int((time.time() + timeout) * 1000),
            }
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except (OSError, ValueError):  # it died, or stop() closed its stdin
                self._kill()
                return self._failed(request_id, "Runtime.ExitError", "the function's process died", 0.0)
            # Lambda stops the invocation at Timeout; a little slack for the pipe.
            message = self._next_message(timeout + 0.5)
            elapsed = (time.monotonic() - started) * 1000
            if message is None:
                timed_out = self._running()
                self._kill()  # a timed-out container is not reused
                if timed_out:
                    return self._failed(
                        request_id, "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds", elapsed
                    )
                return self._failed(request_id, "Runtime.ExitError", "the function's process exited", elapsed)
            if message["type"] == "result":
                return Invocation(
                    self.function.logical_id, request_id, True, message["payload"], elapsed, init_ms
                )
            return Invocation(self.function.logical_id, request_id, False, message["error"], elapsed, init_ms)

    def _failed(self, request_id: str, error_type: str, message: str, elapsed: float) -> Invocation:
        error = {"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {message}"}
        self._console.say(self.function.logical_id, f"{error_type}: {message}")
        return Invocation(self.function.logical_id, request_id, False, error, elapsed)

    def _next_message(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self._messages.get(timeout=timeout)
        except queue.Empty:
            return None

    @staticmethod
    def _read_answers(process: subprocess.Popen[str], messages: queue.Queue[dict[str, Any] | None]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with contextlib.suppress(ValueError):
                messages.put(json.loads(line))
        messages.put(None)

    def _read_logs(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self._console.function_log(self.function.logical_id, line.rstrip("\n"))

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._close(process)

    def _close(self, process: subprocess.Popen[str]) -> None:
        """After the process ended: let the readers drain its pipes, then close them."""
        for reader in self._readers:
            reader.join(timeout=STOP_GRACE_SECONDS)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop(self) -> None:
        """End the process: EOF on its stdin (an idle runtime exits at once), then SIGTERM,
        then SIGKILL. An invocation in flight is not waited for: it ends as a failure."""
        self._stopped = True
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close(process)


class FunctionInitError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('errorType')}: {error.get('errorMessage')}")
        self.error = error


# --- Lambda's Invoke API ---------------------------------------------------------------------

_INVOKE_PATH: Final = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


class BackgroundServer:
    """An HTTP server answering on a daemon thread of its own: ``url``, ``start``, ``stop``."""

    def __init__(self, server: http.server.ThreadingHTTPServer, name: str) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        """Where a client on this machine reaches it (127.0.0.1 for a wildcard address)."""
        host, port = self._server.server_address[:2]
        shown = str(host) if str(host) not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{shown}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which must have run
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


class LambdaApiServer(BackgroundServer):
    """``POST /2015-03-31/functions/{name}/invocations`` for the local functions.

    ``find`` maps a function name, logical id or ARN to its container. RequestResponse
    answers the result (``X-Amz-Function-Error: Unhandled`` on failure); Event answers 202
    and runs in the background; DryRun answers 204.
    """

    def __init__(
        self,
        find: Callable[[str], FunctionContainer | None],
        console: Console,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._find = find
        self._console = console
        server = _ThreadingServer((host, port), _InvokeHandler)
        server.console = console
        server.api = self
        super().__init__(server, "lambda-api")

    def invoke(self, name: str, invocation_type: str, event: Any) -> tuple[int, dict[str, str], bytes]:
        container = self._find(_function_name(name))
        if container is None:
            body = {"Type": "User", "message": f"Function not found: {name}"}
            headers = {"x-amzn-ErrorType": "ResourceNotFoundException"}
            return 404, headers, json.dumps(body).encode()
        if invocation_type == "DryRun":
            return 204, {}, b""
        if invocation_type == "Event":
            threading.Thread(target=self._run, args=(container, event, "Event"), daemon=True).start()
            return 202, {}, b""
        result = self._run(container, event, "RequestResponse")
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if not result.ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
        return 200, headers, json.dumps(result.payload).encode()

    def _run(self, container: FunctionContainer, event: Any, invocation_type: str) -> Invocation:
        result = container.invoke(event)
        self._console.say(
            "lambda", f"Invoke {container.function.logical_id} ({invocation_type}) → {result.summary}"
        )
        return result


def _function_name(name: str) -> str:
    """``arn:aws:lambda:region:acct:function:NAME[:qualifier]`` or ``NAME[:qualifier]`` → NAME."""
    name = unquote(name)
    if name.startswith("arn:"):
        parts = name.split(":")
        return parts[6] if len(parts) > 6 else name
    return name.split(":", 1)[0]


class LocalHttpServer(http.server.ThreadingHTTPServer):
    """The local servers' base: a client that hangs up before its answer is one line on the
    console (``tag``), not socketserver's traceback (``BaseServer.handle_error`` prints one
    for any exception a handler raises, BrokenPipeError included)."""

    daemon_threads = True
    block_on_close = False
    console: Console | None = None
    tag = "http"

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError) and self.console is not None:
            client = (
                ":".join(map(str, client_address[:2]))
                if isinstance(client_address, tuple)
                else client_address
            )
            self.console.say(self.tag, f"{client} hung up before the answer ({type(error).__name__})")
            return
        super().handle_error(request, client_address)


class _ThreadingServer(LocalHttpServer):
    api: LambdaApiServer
    tag = "lambda-api"


class _InvokeHandler(http.server.BaseHTTPRequestHandler):
    server: _ThreadingServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        match = _INVOKE_PATH.match(self.path.split("?", 1)[0])
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if match is None:
            self._send(
                404, {"x-amzn-ErrorType": "UnknownOperationException"}, b'{"message": "Unknown operation"}'
            )
            return
        try:
            event = json.loads(raw) if raw.strip() else {}
        except ValueError:
            self._send(
                400,
                {"x-amzn-ErrorType": "InvalidRequestContentException"},
                b'{"Type": "User", "message": "Could not parse request body into json"}',
            )
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        status, headers, body = self.server.api.invoke(match["name"], invocation_type, event)
        self._send(status, headers, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # one summary line per invoke instead
        pass
