"""moto in server mode: a local AWS (Secrets Manager, SSM, DynamoDB, …) over real HTTP.

Shared by the tests (tests/fixtures/aws.py) and the local loop (``make local``). boto3 in
any process reaches it through ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any


class _OneRequestAtATime:
    """WSGI wrapper: moto's backends are not thread-safe, the services they stand for are.

    SSM's ``PutParameter(Overwrite=False)`` is atomic; in moto, two threads can both pass
    its "does it exist" check. Serializing requests restores the service's atomicity, which
    the lease (8 processes against one server) relies on.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


def start_moto_server(port: int = 0, host: str = "127.0.0.1") -> Any:
    """A started :class:`ThreadedMotoServer` on ``port`` (0: a free one), requests one at a time.

    ``server.get_host_and_port()`` gives the bound address; ``server.stop()`` stops it.
    Raises :class:`OSError` when the port is taken. moto is imported here, not at module
    level: the lease tests' child processes import the test fixtures and should not pay for it.
    """
    import logging

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # werkzeug logs every request at INFO; a local AWS should be quiet.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    failure: list[BaseException] = []

    class SerializedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
            try:
                self._server = make_server(
                    self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
                )
            except BaseException as exc:  # the port is taken: tell start(), which waits for us
                failure.append(exc)
                self._server_ready_event.set()
                return
            self._server_ready_event.set()
            self._server.serve_forever()

    server = SerializedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    if failure:
        raise failure[0]
    return server


def serve_moto_forever(port_out: Any) -> None:
    """Child-process entry: run the serialized server and report its port to the parent."""
    import time

    server = start_moto_server()
    port_out.put(server.get_host_and_port()[1])
    while True:
        time.sleep(3600)


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.sam.moto_server [--port N]``: a local AWS in a process of its own.

    Prints the bound port on the first line of stdout (``--port`` when free, else a free
    one), then serves until its stdin closes: the parent closes it to stop the server, and
    a parent that dies closes it too, so the server never outlives it.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m devtools.sam.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0, or a port taken: a free one")
    args = parser.parse_args(argv)
    try:
        server = start_moto_server(args.port, args.host)
    except OSError:
        server = start_moto_server(0, args.host)
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()
    server.stop()
    server._server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
