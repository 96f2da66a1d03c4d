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
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from wxtoken.budget import TOKEN_STORE
from wxtoken.errors import LeaseBusyError, StoreError
from wxtoken.store.base import RecordName, decode, encode

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


def _fetched_at(record: dict[str, Any]) -> float:
    value = float(record["fetched_at"])
    if not math.isfinite(value):
        raise ValueError("record fetched_at must be a finite number of unix seconds")
    return value


def _expires_at(lease: dict[str, Any]) -> float:
    """When a stored lease expires; one we cannot read counts as long expired."""
    try:
        return float(lease["expires_at"])
    except (KeyError, TypeError, ValueError):
        return 0.0


class SSMTokenStore:
    """The :class:`~wxtoken.store.base.TokenStore` on SSM Parameter Store.

    ``client`` is a boto3 ``ssm`` client (build one with :meth:`from_settings` for the
    retry and timeout policy); ``clock`` gives unix seconds for lease expiry, and must
    agree across processes (wall time, not monotonic).
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "/wxtoken",
        kms_key_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix.rstrip("/")
        self.kms_key_id = kms_key_id
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> Self:
        """A store on a new boto3 client (region and endpoint from the environment)."""
        import boto3

        client = boto3.client("ssm", config=CLIENT_CONFIG)
        return cls(client, prefix=settings.parameter_prefix, kms_key_id=settings.kms_key_id, clock=clock)

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
                stored = json.loads(raw)
                stored_at = float(stored["fetched_at"])
            except (ValueError, TypeError, KeyError):
                stored_at = None
            if stored_at is not None and stored_at >= fetched_at:
                return False
        params: dict[str, Any] = {
            "Name": parameter,
            "Value": encode(record),
            "Type": "SecureString",
            "Overwrite": True,
            "Tier": "Standard",
        }
        if self.kms_key_id:
            params["KeyId"] = self.kms_key_id
        try:
            self.client.put_parameter(**params)
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("PutParameter", exc) from None
        return True

    # -- lease -----------------------------------------------------------------------------

    def lease(self, appid: str, ttl_seconds: float) -> AbstractContextManager[None]:
        """Hold ``{prefix}/{appid}/lease`` for the ``with`` block, or raise LeaseBusyError.

        Taking it is ``PutParameter(Overwrite=False)`` of ``{"owner", "expires_at"}``,
        which SSM refuses atomically when the parameter exists. When it exists but has
        expired (its holder died), it is deleted and the put tried once more. Releasing
        deletes it only if it still names this owner; a lease found taken over, or a
        release that fails, is logged and the lease left to expire.

        Residual races, both needing a holder that died or overran ``ttl_seconds``:

        * Takeover: two contenders both read the same expired lease; A deletes it and puts
          its own; B, still acting on what it read, then deletes A's fresh lease and puts
          its own. Both believe they hold it. SSM has no conditional delete to close this;
          the window is one GetParameter-to-DeleteParameter round trip, and the cost is
          two refreshes at once, which ``write_if_newer`` and WeChat's five-minute overlap
          of old and new tokens absorb.
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
            if stored is not None and _expires_at(stored) > self.clock():
                raise LeaseBusyError(f"the refresh lease of {appid} is held by another process")
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
        value = json.dumps({"owner": owner, "expires_at": self.clock() + ttl_seconds})
        try:
            self.client.put_parameter(Name=name, Value=value, Type="String", Overwrite=False, Tier="Standard")
        except ClientError as exc:
            if _error_code(exc) == "ParameterAlreadyExists":
                return False
            raise _store_error("PutParameter", exc) from None
        except BotoCoreError as exc:
            raise _store_error("PutParameter", exc) from None
        return True

    def _read_lease(self, name: str) -> dict[str, Any] | None:
        """The stored lease; ``{}`` (expired at once) when it is not a lease we can read."""
        raw = self._get(name, decrypt=False)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def _release(self, appid: str, name: str, owner: str) -> None:
        try:
            stored = self._read_lease(name)
            if stored is None or stored.get("owner") != owner:
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
        try:
            response = self.client.get_parameter(Name=name, WithDecryption=decrypt)
        except ClientError as exc:
            if _error_code(exc) == "ParameterNotFound":
                return None
            raise _store_error("GetParameter", exc) from None
        except BotoCoreError as exc:
            raise _store_error("GetParameter", exc) from None
        return str(response["Parameter"]["Value"])

    def _delete(self, name: str) -> None:
        try:
            self.client.delete_parameter(Name=name)
        except ClientError as exc:
            if _error_code(exc) != "ParameterNotFound":
                raise _store_error("DeleteParameter", exc) from None
        except BotoCoreError as exc:
            raise _store_error("DeleteParameter", exc) from None
