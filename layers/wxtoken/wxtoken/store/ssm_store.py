"""Token store on SSM Parameter Store, through a boto3 ``ssm`` client.

Records live at ``{prefix}/{appid}/{name}`` as ``SecureString`` (encrypted with the
given KMS key, or ``alias/aws/ssm``); the refresh lease at ``{prefix}/{appid}/lease`` as
a plain ``String``. SSM has no conditional update, and no expiry on Standard parameters,
so both the write ordering and the lease are built here from what it does have:
``PutParameter(Overwrite=False)`` fails atomically when the name exists.

Every botocore error becomes :class:`~wxtoken.errors.StoreError` naming the operation and
the AWS error code only (``"SSM PutParameter failed: ThrottlingException"``), never a
parameter value. Throttling and transient errors are first retried by botocore itself
(standard mode, see :data:`CLIENT_CONFIG`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from wxtoken.budget import TOKEN_STORE
from wxtoken.errors import LeaseBusyError, StoreError
from wxtoken.frozen import Frozen
from wxtoken.store.base import RecordName, decode, encode
from wxtoken.store.server_clock import DATE_RESOLUTION_SECONDS, server_time

if TYPE_CHECKING:
    from wxtoken.config import Settings

logger = logging.getLogger(__name__)

# Three attempts in all (``total_max_attempts`` counts the first call): a throttled call is
# retried after up to 1 s, then 2 s of backoff, while a dead SSM fails a call in 1.5-2.25 s
# (0.5 s connect, 0.75 s read timeouts; 3.9 s at worst), so the webhook still answers inside
# WeChat's 5 s. The arithmetic is in wxtoken.budget (TOKEN_STORE).
CLIENT_CONFIG = TOKEN_STORE.botocore_config()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "UnknownError")


def _store_error(operation: str, exc: Exception) -> StoreError:
    code = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return StoreError(f"SSM {operation} failed: {code}")


def _fetched_at(record: Any) -> float:
    value = float(record["fetched_at"])
    if not math.isfinite(value):
        raise ValueError("record fetched_at must be a finite number of unix seconds")
    return value


class _Lease(Frozen):
    owner: str
    expired: bool


class SSMTokenStore:
    """The :class:`~wxtoken.store.base.TokenStore` on SSM Parameter Store.

    ``client`` is a boto3 ``ssm`` client (build one with :meth:`from_settings` for the
    retry and timeout policy). Leases expire on SSM's clock; ``clock`` (unix seconds) is
    used only for leases written by older versions, which carry the writer's expiry.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        prefix: str = "/wxtoken",
        kms_key_id: str | None = None,
        clock: Callable[[], float] = time.time,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        if client is None and client_factory is None:
            raise ValueError("SSMTokenStore needs a client or a client_factory")
        self._client = client
        self._client_factory = client_factory
        self._client_lock = threading.Lock()
        self.prefix = prefix.rstrip("/")
        self.kms_key_id = kms_key_id
        self.clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time, boto3_session: Any = None
    ) -> Self:
        """A store on a boto3 client of its own (region and endpoint from the environment),
        built at its first call."""

        def client() -> Any:
            import boto3

            if boto3_session is not None:
                return boto3_session.client("ssm", config=CLIENT_CONFIG)
            return boto3.client("ssm", config=CLIENT_CONFIG)

        return cls(
            prefix=settings.parameter_prefix,
            kms_key_id=settings.kms_key_id,
            clock=clock,
            client_factory=client,
        )

    @property
    def client(self) -> Any:
        """The boto3 ``ssm`` client, built at first use: a webhook that never reads the store
        (its message path) does not pay for it at cold start."""
        if self._client is None:
            with self._client_lock:
                if self._client is None and self._client_factory is not None:
                    self._client = self._client_factory()
        return self._client

    def platform_store(self) -> None:
        """Open Platform needs a store that indexes its records (TOKEN_STORE=dynamodb)."""
        return None

    def dedup_backend(self) -> None:
        """SSM cannot hold dedup records (no expiry, a few writes per second): the webhook
        uses its DynamoDB table."""
        return None

    def parameter_name(self, appid: str, name: RecordName | str) -> str:
        return f"{self.prefix}/{appid}/{name}"

    def lease_name(self, appid: str) -> str:
        return self.parameter_name(appid, "lease")

    # -- records ---------------------------------------------------------------------------

    def read(self, appid: str, name: RecordName) -> dict[str, Any] | None:
        raw = self._get(self.parameter_name(appid, name), decrypt=True)
        return None if raw is None else decode(raw, f"{name} record")

    def write_if_newer(
        self, appid: str, name: RecordName, record: dict[str, Any], ttl_seconds: float | None
    ) -> bool:
        """Put ``record`` as a SecureString unless the stored one is at least as new.

        SSM has no conditional put, so read-compare-put is not atomic on its own. It is
        serialized by the refresh lease: the refresher only writes while holding
        :meth:`lease`. The compare still keeps an older record (a refresh that overran
        its lease) from replacing a newer one in every ordering but the one where both
        read before either writes. A stored record that is not JSON is replaced.

        The put creates the SecureString if it is missing (CloudFormation cannot create
        SecureStrings). ``ttl_seconds`` is ignored: Standard parameters do not expire,
        readers check ``expires_at``.
        """
        fetched_at = _fetched_at(record)
        parameter = self.parameter_name(appid, name)
        raw = self._get(parameter, decrypt=True)
        if raw is not None:
            try:
                stored_at: float | None = _fetched_at(json.loads(raw))
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError, OverflowError):
                stored_at = None  # damaged: never blocks the write that replaces it
            if stored_at is not None and stored_at >= fetched_at:
                return False
        self._put(parameter, record)
        return True

    def read_raw(self, appid: str, name: RecordName) -> str | None:
        return self._get(self.parameter_name(appid, name), decrypt=True)

    def replace(
        self,
        appid: str,
        name: RecordName,
        record: dict[str, Any],
        ttl_seconds: float | None,
        *,
        expected: str | None,
    ) -> bool:
        """Put ``record`` if the stored value is still ``expected``.

        SSM has no conditional put: the read and the put are serialized by the refresh lease
        (the refresher writes only while holding it), as for :meth:`write_if_newer`.
        """
        parameter = self.parameter_name(appid, name)
        current = self._get_parameter(parameter, decrypt=True)
        if (None if current is None else str(current["Parameter"]["Value"])) != expected:
            return False
        version = 0 if current is None else int(current["Parameter"]["Version"])
        if self._put(parameter, record) != version + 1:
            # Another put landed between our read and ours (only two holders of one lease get
            # here): ours may have replaced a newer record. Say "not written", so the caller
            # marks the stored token suspect and the next run mints once more.
            logger.warning("a concurrent write to the same record was detected", extra={"appid": appid})
            return False
        return True

    def _put(self, parameter: str, record: dict[str, Any]) -> int:
        """PutParameter (overwrite); returns the parameter's new version."""
        params: dict[str, Any] = {
            "Name": parameter,
            "Value": encode(record),
            "Type": "SecureString",
            "Overwrite": True,
            "Tier": "Standard",
        }
        if self.kms_key_id:
            params["KeyId"] = self.kms_key_id
        response = self._call("PutParameter", lambda: self.client.put_parameter(**params))
        return int(response.get("Version", 0))

    # -- lease -----------------------------------------------------------------------------

    def lease(self, appid: str, ttl_seconds: float) -> AbstractContextManager[None]:
        """Hold ``{prefix}/{appid}/lease`` for the ``with`` block, or raise LeaseBusyError.

        Taking it is ``PutParameter(Overwrite=False)`` of ``{"owner", "ttl"}``, which SSM
        refuses atomically when the parameter exists. Whether an existing lease has expired
        is judged **on SSM's clock**, never a writer's: it expired when the ``Date`` of
        SSM's answer is ``ttl`` past the lease's ``LastModifiedDate`` (both set by SSM). A
        writer whose clock is minutes off can then neither write a lease that others think
        expired at once, nor think a live one expired (issue 9: two mints, and the late
        writer's older token stored over the newer). An expired lease (its holder died) is
        deleted and the put tried once more. A put whose answer was lost but that SSM made
        is found by its owner and held. Releasing deletes it only if it still names this
        owner; a lease found taken over, or a release that fails, is logged and left to expire.

        Residual races, both needing a holder that died or overran ``ttl_seconds``:

        * Takeover: two contenders both read the same expired lease; A deletes it and puts
          its own; B, still acting on what it read, then deletes A's fresh lease and puts
          its own. Both believe they hold it. SSM has no conditional delete to close this;
          the window is one GetParameter-to-DeleteParameter round trip. The refresher's
          token write compares against what it read before minting, so neither holder
          stores its token over the other's blindly (the stored one is marked suspect and
          the next run mints once more).
        * Release: between reading our own lease and deleting it, it may expire and be
          taken; the delete then removes the new holder's lease. Only a holder that
          overran its TTL can get there.
        """
        if ttl_seconds <= 0:
            raise ValueError("lease ttl_seconds must be positive")
        return self._lease(appid, ttl_seconds)

    @contextmanager
    def _lease(self, appid: str, ttl_seconds: float) -> Iterator[None]:
        name = self.lease_name(appid)
        owner = uuid.uuid4().hex
        if not self._try_take(name, owner, ttl_seconds):
            stored = self._read_lease(name)
            if stored is not None and stored.owner == owner:
                pass  # our put went through; its answer was lost and botocore retried it
            elif stored is not None and not stored.expired:
                raise LeaseBusyError(f"the refresh lease of {appid} is held by another process")
            else:
                if stored is not None:
                    logger.warning(
                        "taking over an expired refresh lease; its holder died or overran it",
                        extra={"appid": appid},
                    )
                    self._delete(name)
                if not self._try_take(name, owner, ttl_seconds):
                    raise LeaseBusyError(f"the refresh lease of {appid} is held by another process")
        try:
            yield
        finally:
            self._release(appid, name, owner)

    def _try_take(self, name: str, owner: str, ttl_seconds: float) -> bool:
        # ``expires_at`` (the writer's clock) is kept for wxtoken versions that judged leases
        # by it; this version reads ``ttl`` against SSM's own times.
        value = json.dumps({"owner": owner, "ttl": ttl_seconds, "expires_at": self.clock() + ttl_seconds})
        put = self._call(
            "PutParameter",
            lambda: self.client.put_parameter(
                Name=name, Value=value, Type="String", Overwrite=False, Tier="Standard"
            ),
            tolerated="ParameterAlreadyExists",
        )
        return put is not None

    def _read_lease(self, name: str) -> _Lease | None:
        """The stored lease, judged on SSM's clock; one we cannot read counts as expired."""
        response = self._get_parameter(name, decrypt=False)
        if response is None:
            return None
        parameter = response["Parameter"]
        try:
            value = json.loads(parameter["Value"])
            owner = str(value["owner"])
        except (ValueError, TypeError, KeyError):
            return _Lease(owner="", expired=True)
        server_now = server_time(response)
        modified = parameter.get("LastModifiedDate")
        ttl = value.get("ttl") if isinstance(value, dict) else None
        if server_now is not None and isinstance(modified, datetime) and isinstance(ttl, int | float):
            # The Date header has whole seconds: wait one more rather than take a live lease.
            expires = modified.timestamp() + float(ttl) + DATE_RESOLUTION_SECONDS
            return _Lease(owner, expired=server_now >= expires)
        # A lease written by an older version, or an answer without SSM's times: the writer's
        # clock is all there is.
        expires_at = value.get("expires_at")
        expired = not isinstance(expires_at, int | float) or float(expires_at) <= self.clock()
        return _Lease(owner, expired=expired)

    def _release(self, appid: str, name: str, owner: str) -> None:
        try:
            stored = self._read_lease(name)
            if stored is None or stored.owner != owner:
                logger.warning(
                    "refresh lease expired before release and was taken over",
                    extra={"appid": appid},
                )
                return
            self._delete(name)
        except StoreError as exc:
            logger.warning(
                "could not release the refresh lease; it expires by itself",
                extra={"appid": appid, "error": str(exc)},
            )

    # -- SSM calls ---------------------------------------------------------------------------

    def _get(self, name: str, *, decrypt: bool) -> str | None:
        response = self._get_parameter(name, decrypt=decrypt)
        return None if response is None else str(response["Parameter"]["Value"])

    def _get_parameter(self, name: str, *, decrypt: bool) -> dict[str, Any] | None:
        """GetParameter's whole answer (its value, SSM's times and headers), or ``None``."""
        response: dict[str, Any] | None = self._call(
            "GetParameter",
            lambda: self.client.get_parameter(Name=name, WithDecryption=decrypt),
            tolerated="ParameterNotFound",
        )
        return response

    def _delete(self, name: str) -> None:
        self._call(
            "DeleteParameter", lambda: self.client.delete_parameter(Name=name), tolerated="ParameterNotFound"
        )

    @staticmethod
    def _call(operation: str, call: Callable[[], Any], *, tolerated: str | None = None) -> Any:
        """``call()``'s answer; ``None`` when SSM answers with the ``tolerated`` error code
        (a parameter already there, or not there); any other failure a :class:`StoreError`
        naming the operation and AWS's code only, never a value."""
        try:
            return call()
        except ClientError as exc:
            if tolerated is not None and _error_code(exc) == tolerated:
                return None
            raise _store_error(operation, exc) from None
        except BotoCoreError as exc:
            raise _store_error(operation, exc) from None
