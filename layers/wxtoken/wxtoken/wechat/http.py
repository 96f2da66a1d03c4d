"""WeChat's HTTP transport: one pooled urllib3 client, proxies and TLS as requests set them up.

Why urllib3 and not requests (issue 12): ``import requests`` cost 16 ms of a cold start on
top of an already imported boto3 (16.2–17.1 ms, 3 fresh processes, 2026-12-06: its charset
detection, cookie jar, IDNA tables and adapters), every time a cold guard run probes WeChat
(every other minute as deployed) and on every cold refresh; the probing guard run's cold
start was 1.31–1.35× ``import boto3`` plus one secret read against 1.17–1.20× without the
probe (``bench/cold_import.py``). urllib3 is what requests sends with, and botocore has
already loaded it. What requests added here is kept, by the same rules:

- **TLS**: certificates checked against certifi's bundle, as requests does, or the file in
  ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``) when one is set, as requests honours them.
- **Proxies**: the egress proxy from ``HTTPS_PROXY_SECRET_ID`` for every call when given;
  otherwise the environment's (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, and ``NO_PROXY``
  for the hosts that bypass them: :func:`urllib.request.getproxies`, which requests builds
  on too). Credentials in a proxy URL are sent as ``Proxy-Authorization: Basic``, never logged.
- **Pooling**: connections kept alive across warm invocations (a TLS handshake saved per
  call); no retries and no redirects (the retry loop is :mod:`wxtoken.wechat.api`'s).

The environment is read once, when the transport is made (a Lambda's does not change).

urllib3 logs each request's target at DEBUG, query string included: the token URL's carries
the AppSecret, an API call's the access token. A filter on its logger drops every query
string from those lines (the path stays), whoever turns DEBUG on.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import urllib3

_USER_AGENT = "wxtoken"


class _QueryRedactor(logging.Filter):
    """Drops the query string from every string argument of urllib3's log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, str) and "?" in arg for arg in record.args):
            record.args = tuple(
                f"{arg.partition('?')[0]}?<query not logged>" if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_QueryRedactor())

_POOLS = 4
_POOL_SIZE = 16


class WeChatHttp:
    """Sends one request and returns ``(status, body)``; raises urllib3's exceptions
    (:mod:`wxtoken.wechat.api` turns them into :class:`~wxtoken.errors.WeChatTransportError`)."""

    def __init__(self, *, proxy: str | None = None) -> None:
        # The standard variables every HTTP client honours, read here as requests read them
        # (not in wxtoken.config: they are the platform's, not wxtoken's settings).
        env = os.environ
        self._proxy = proxy
        # {"https": url, "http": url, "all": url, "no": hosts}; lower-case names win.
        self._environ_proxies = {} if proxy else urllib.request.getproxies_environment()
        bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or _certifi_bundle()
        self._pool_kw: dict[str, Any] = {
            "cert_reqs": "CERT_REQUIRED",
            # requests' rule too: a directory of hashed certificates, or one bundle file.
            ("ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"): bundle,
            "maxsize": _POOL_SIZE,
            "headers": {"User-Agent": _USER_AGENT},
        }
        self._direct = urllib3.PoolManager(_POOLS, **self._pool_kw)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        timeout: tuple[float, float],
    ) -> tuple[int, bytes]:
        """One attempt: ``params`` go in the query string, ``json_body`` (unless ``None``)
        as a JSON body; ``timeout`` is (connect, read) seconds."""
        # requests' rule: a parameter whose value is None is left out.
        query = {name: value for name, value in (params or {}).items() if value is not None}
        if query:
            url = f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(query, doseq=True)}"
        headers: dict[str, str] = {}
        body: bytes | None = None
        if json_body is not None:
            # requests' own encoding: ASCII-escaped JSON, NaN refused.
            body = json.dumps(json_body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        response = self._manager(url).request(
            method,
            url,
            body=body,
            headers={**self._pool_kw["headers"], **headers},
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            retries=False,
            redirect=False,
        )
        return response.status, response.data

    def _manager(self, url: str) -> urllib3.PoolManager:
        proxy = self._proxy or self._environment_proxy(url)
        if proxy is None:
            return self._direct
        manager = self._proxied.get(proxy)
        if manager is None:
            with self._lock:
                manager = self._proxied.get(proxy)
                if manager is None:
                    manager = self._proxied[proxy] = urllib3.ProxyManager(
                        proxy, _POOLS, proxy_headers=_proxy_auth(proxy), **self._pool_kw
                    )
        return manager

    def _environment_proxy(self, url: str) -> str | None:
        if not self._environ_proxies:
            return None
        parts = urlsplit(url)
        if _bypasses(parts.hostname or "", parts.port, self._environ_proxies.get("no", "")):
            return None
        return self._environ_proxies.get(parts.scheme) or self._environ_proxies.get("all")


def _bypasses(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts the host, by requests' rule (``should_bypass_proxies``):
    an IPv4 host matches an entry that is the same address or a network holding it; a name
    matches an entry it (or it with its port) ends with; ``*`` matches every host."""
    entries = [entry.lower() for entry in no_proxy.replace(" ", "").split(",") if entry]
    if "*" in entries:
        return True
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        with_port = f"{host}:{port}" if port else host
        return any(host.endswith(entry) or with_port.endswith(entry) for entry in entries)
    for entry in entries:
        try:
            if address in ipaddress.IPv4Network(entry, strict=False):
                return True
        except ValueError:
            continue  # a name, or not an address at all
    return False


def _proxy_auth(proxy: str) -> dict[str, str]:
    """``Proxy-Authorization`` from the URL's ``user:password@`` (percent-decoded)."""
    parts = urlsplit(proxy)
    if not parts.username:  # requests sends none without a user name
        return {}
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return dict(urllib3.make_headers(proxy_basic_auth=credentials))


def _certifi_bundle() -> str:
    import certifi

    return str(certifi.where())
