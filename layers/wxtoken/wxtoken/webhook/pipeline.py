"""WeChat's server callbacks: URL verification and messages, plain, safe and compatible mode.

The order of checks is the order of cost: size, app, timestamp, signature (always — also
in plain mode, which one well-known SDK skips), then decrypt and parse, then the signature's
binding to its body (plain mode signs no body: a captured query is good for one body only).
Every failure is a typed :class:`~wxtoken.errors.BadRequest` the handler maps to a short 4xx.

The business handler (see :mod:`wxtoken.dispatch`) runs once per delivery: WeChat retries a
callback up to 3 times, so answers are kept by a :class:`Deduplicator` and a retry gets the
same answer. It also runs against a deadline: WeChat drops an answer after 5 s and shows
users "该公众号暂时无法提供服务", so an overrunning handler is answered ``success`` in time
(:mod:`wxtoken.webhook.time_limit`: inline, stopped by a timer when its time is up).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from wxtoken.apps import AppConfig, AppsSource, is_appid
from wxtoken.config import Settings
from wxtoken.deadline import Deadline
from wxtoken.errors import BadRequest, MalformedMessage, PayloadTooLarge, SignatureMismatch, UnknownAppError
from wxtoken.observability import DEADLINE_FALLBACK, WEBHOOK_MESSAGE, count, count_by, logger
from wxtoken.webhook.context import HandlerContext
from wxtoken.webhook.router import MessageRouter
from wxtoken.webhook.time_limit import TimeLimitExceeded, call_within
from wxtoken.wechat.crypto import MessageCrypto
from wxtoken.wechat.messages import Event, Message, parse_encrypted_envelope, parse_message
from wxtoken.wechat.replies import SUCCESS, Reply, encrypted_reply, reply_to
from wxtoken.wechat.signature import sha1_signature, verify_signature

if TYPE_CHECKING:
    from wxtoken.client import TokenClient

# The standard logger behind powertools' ``logger`` (Logger(service="wxtoken")).
_STD_LOGGER = logging.getLogger("wxtoken")
# WebhookMessage by MsgType, once per message.
_count_message = count_by(WEBHOOK_MESSAGE, "MsgType")
# WeChat's timestamp is unix seconds: 10 digits until the year 2286; a little room, no more.
_MAX_TIMESTAMP_DIGITS = 12


class WebhookResponse(NamedTuple):
    """The webhook's answer. A named tuple: made on every request, where a ``Frozen``'s
    ``__init__`` cost 0.8 µs and this 0.26 (a frozen dataclass 0.38, but about 1 ms of the cold
    start to define; this 0.2 ms). Immutable and hashable, as the dataclass was."""

    body: str
    content_type: str = "text/plain; charset=utf-8"


class BindingRefused(Exception):
    """A :meth:`Deduplicator.once` binding's key holds another value (or is being bound by a
    twin at this very moment)."""


class Deduplicator(Protocol):
    def once(
        self,
        key: str,
        produce: Callable[[], str],
        *,
        delivery: bool = True,
        binding: tuple[str, str] | None = None,
    ) -> str:
        """``produce()``'s answer for the first delivery of ``key``; the same answer after.

        ``delivery=False`` for a key that is not one of WeChat's deliveries (a signature's
        binding to its body): a hit on it is no retry, so it is not counted as one.
        ``binding=(bind_key, value)`` keeps ``value`` under ``bind_key`` unless one is kept
        there already, in the same round trip as ``key``'s claim where the store allows, and
        raises :class:`BindingRefused` before ``produce`` runs when another value is kept.
        """
        ...

    def register_context(self, context: Any) -> None:
        """The invocation's Lambda context, so an in-progress record expires with it."""
        ...


class NoDeduplication:
    """For local runs without a dedup store: every delivery runs the handler, and a replayed
    plain-mode signature is not recognised."""

    def once(
        self,
        key: str,
        produce: Callable[[], str],
        *,
        delivery: bool = True,
        binding: tuple[str, str] | None = None,
    ) -> str:
        return produce()

    def register_context(self, context: Any) -> None:
        """Nothing is kept, so nothing expires."""


class Webhook:
    """WeChat's server callbacks for every app of the secret: :meth:`verify_url` for the URL
    check, :meth:`receive` for messages (plain, safe, compatible mode). Raises the typed
    :class:`~wxtoken.errors.BadRequest` family; runs the handler once per delivery, inside
    WeChat's 5 s."""

    def __init__(
        self,
        *,
        settings: Settings,
        apps: AppsSource,
        router: MessageRouter,
        dedup: Deduplicator,
        clock: Callable[[], float] = time.time,
        on_outcome: Callable[[str, Message | None], None] | None = None,
        tokens: Callable[[], TokenClient] | None = None,
    ) -> None:
        self._settings = settings
        self._apps = apps
        self._router = router
        self._dedup = dedup
        self._deduplicates = not isinstance(dedup, NoDeduplication)
        self._clock = clock
        self._on_outcome = on_outcome or (lambda _what, _message: None)
        self._tokens = tokens or _default_tokens
        self._cryptos: dict[tuple[str, str], MessageCrypto] = {}
        self._cryptos_lock = threading.Lock()

    # --- GET: URL verification -------------------------------------------------------
    def verify_url(self, appid: str, query: Mapping[str, str]) -> str:
        """The ``echostr`` to send back unchanged, once the signature checks out."""
        return self._echo(self._app(appid), query)

    def verify_authorizer_url(
        self, component_appid: str, authorizer_appid: str, query: Mapping[str, str]
    ) -> str:
        """:meth:`verify_url` for the platform's 消息与事件接收URL: the component's Token signs."""
        _require_appid(authorizer_appid)
        return self._echo(self._apps.component(component_appid), query)

    def _echo(self, app: AppConfig, query: Mapping[str, str]) -> str:
        timestamp, nonce = self._fresh_timestamp(query)
        verify_signature(query.get("signature"), self._token(app), timestamp, nonce)
        echostr = query.get("echostr")
        if not echostr or not _encodable(echostr):
            raise MalformedMessage("malformed message")
        return echostr

    # --- POST: messages and events ---------------------------------------------------
    def receive(self, appid: str, query: Mapping[str, str], body: bytes) -> WebhookResponse:
        """The answer to a message or event for app ``appid`` (its ``/wechat/{appid}`` URL)."""
        self._check_size(body)
        return self._receive(self._app(appid), appid, query, body)

    def receive_for_authorizer(
        self, component_appid: str, authorizer_appid: str, query: Mapping[str, str], body: bytes
    ) -> WebhookResponse:
        """The answer to a message or event for an account that authorized the platform.

        WeChat sends them to the platform's 消息与事件接收URL, configured as
        ``…/open/<component_appid>/$APPID$`` ($APPID$: the authorizer's appid), signed with
        the platform's Token and encrypted with its EncodingAESKey, the component appid
        closing the ciphertext (第三方平台, 开发前必读: 消息与事件接收URL, 消息加解密说明). So the
        component verifies and decrypts, and the authorizer is who the message is for: the
        handler's ``context.appid``, and the dedup key's. Only safe mode is taken: WeChat
        always encrypts what it sends a platform, and a plain body would be signed by nothing
        but the URL (raises :class:`MalformedMessage`). The reply is encrypted for the
        component. An ``authorizer_appid`` that is not shaped like an appid is a
        :class:`BadRequest` (400); an unknown component is :class:`UnknownAppError` (404).
        """
        self._check_size(body)
        _require_appid(authorizer_appid)
        component = self._apps.component(component_appid)
        return self._receive(component, authorizer_appid, query, body, safe_mode_only=True)

    def decrypt_component_push(self, component_appid: str, query: Mapping[str, str], body: bytes) -> str:
        """The plaintext XML of a push to the platform's 授权事件接收URL, once its signatures
        check out with the component's Token and its ciphertext names the component appid.

        WeChat encrypts every such push (component_verify_ticket.html); a plain one is
        :class:`MalformedMessage`. Raises what :meth:`receive` raises for the same faults
        (:class:`PayloadTooLarge`, :class:`UnknownAppError`, :class:`SignatureMismatch`,
        :class:`MalformedMessage` for a ciphertext of another appid). No signature binding:
        the signed content is the ciphertext itself, and replaying it writes nothing new.
        """
        self._check_size(body)
        component = self._apps.component(component_appid)
        token = self._token(component)
        timestamp, nonce = self._fresh_timestamp(query)
        # WeChat's query carries both: signature=…&timestamp=…&nonce=…&encrypt_type=aes&
        # msg_signature=… (a push's URL as received, quoted in wechatpy/wechatpy#158).
        verify_signature(query.get("signature"), token, timestamp, nonce)
        if query.get("encrypt_type", "raw").lower() != "aes":
            raise MalformedMessage("malformed message")
        _to_user, encrypt = parse_encrypted_envelope(body)
        verify_signature(query.get("msg_signature"), token, timestamp, nonce, encrypt)
        return self._crypto(component).decrypt(encrypt)

    def _receive(
        self,
        app: AppConfig,
        appid: str,
        query: Mapping[str, str],
        body: bytes,
        *,
        safe_mode_only: bool = False,
    ) -> WebhookResponse:
        """Verify with ``app``'s keys, answer for account ``appid`` (the same for a direct
        app; the authorizer when ``app`` is its component)."""
        token = self._token(app)
        timestamp, nonce = self._fresh_timestamp(query)
        signature = query.get("signature") or ""
        verify_signature(signature, token, timestamp, nonce)

        crypto: MessageCrypto | None = None
        if query.get("encrypt_type", "raw").lower() == "aes":
            # Safe and compatible mode: the encrypted part is the one that counts.
            crypto = self._crypto(app)
            _to_user, encrypt = parse_encrypted_envelope(body)
            verify_signature(query.get("msg_signature"), token, timestamp, nonce, encrypt)
            message = parse_message(crypto.decrypt(encrypt))
        elif safe_mode_only:
            raise MalformedMessage("malformed message")
        else:
            message = parse_message(body)
            encrypt = None

        # DEBUG: the WebhookMessage metric counts messages by type; an INFO line per message
        # cost more than the crypto (bench/webhook_roundtrip.py --breakdown). Asked first:
        # powertools' debug() builds its arguments before the level is checked (4 µs).
        if _STD_LOGGER.isEnabledFor(logging.DEBUG):
            logger.debug(
                "message received",
                extra={"appid": appid, "msg_type": message.msg_type, "event": _event_of(message)},
            )
        if not self._deduplicates:
            # No dedup store (local runs): every delivery runs the handler, and no key or
            # binding is worked out for a store that would keep nothing.
            answer = self._answer(appid, message)
        else:
            try:
                answer = self._dedup.once(
                    f"{appid}:{message.dedup_key}",
                    lambda: self._answer(appid, message),
                    # Bound under the signer (the component for an authorizer): its Token made
                    # the signature, whichever account's URL the request was sent to.
                    binding=self._signature_binding(
                        app.appid, signature, _signed_content(appid, app.appid, encrypt, body)
                    ),
                )
            except BindingRefused:
                logger.warning("signature replayed with another body; refused", extra={"appid": appid})
                raise SignatureMismatch("forbidden") from None
        _count_message(_metric_type(message))  # in the invocation's one EMF line
        if crypto is None or answer == SUCCESS:
            # WeChat takes a plain "success" in every mode.
            return WebhookResponse(answer, "application/xml" if answer != SUCCESS else "text/plain")
        return WebhookResponse(self._encrypt_reply(crypto, token, answer), "application/xml")

    def _answer(self, appid: str, message: Message) -> str:
        """The handler's reply as XML, or ``success``; never waits past the deadline."""
        started = self._clock()
        budget = self._settings.webhook_handler_timeout_seconds
        tokens = self._tokens

        def context() -> HandlerContext:
            # Built as the handler is called, for a handler that takes one: its deadline
            # counts from here, inside the time limit.
            return HandlerContext(appid, message.from_user, message, Deadline.after(budget), tokens)

        try:
            reply = call_within(budget, lambda: self._router.dispatch_lazily(message, context))
        except TimeLimitExceeded:
            logger.warning(
                "business handler overran the deadline; answered success (reply later with the "
                "customer-service message API)",
                extra={"appid": appid, "msg_type": message.msg_type, "event": _event_of(message)},
            )
            count(DEADLINE_FALLBACK)
            self._on_outcome("deadline_fallback", message)
            return SUCCESS
        except Exception:
            logger.exception("business handler failed; answered success", extra={"appid": appid})
            self._on_outcome("handler_error", message)
            return SUCCESS
        if reply is not None and not isinstance(reply, Reply):
            # A str, a dict, a coroutine: nothing WeChat could read. Like a handler's
            # exception, it costs the reply, not the answer (a 500 would make WeChat retry).
            logger.error(
                "business handler returned something that is not a Reply; answered success",
                extra={"appid": appid, "returned": type(reply).__name__},
            )
            self._on_outcome("handler_error", message)
            return SUCCESS
        self._on_outcome("handled", message)
        if reply is None:
            return SUCCESS
        return reply_to(message, reply, create_time=int(max(started, self._clock())))

    # --- helpers ---------------------------------------------------------------------
    @staticmethod
    def _signature_binding(appid: str, signature: str, signed: bytes) -> tuple[str, str]:
        """The signature's binding to its content: a signature seen again with other content
        is refused (:class:`SignatureMismatch`, 403), before the handler runs.

        In plain mode WeChat's ``signature`` covers Token, timestamp and nonce, not the body
        (接入指南): whoever saw one request's URL could send its query with a body of their
        own for as long as the timestamp is fresh. So the first content a signature arrives
        with is kept in the dedup store, and a second one is refused; the same content again
        is WeChat's retry (or a harmless identical replay) and goes on to its deduplicated
        answer. The key is the signature alone: it stands for (timestamp, nonce), including
        any other split of WeChat's unseparated concatenation into a timestamp and a nonce.

        Safe mode too, though ``msg_signature`` covers the ciphertext there: its URL carries
        the same ``signature``, which must not pass for plain mode with a forged body once
        ``encrypt_type`` and ``msg_signature`` are dropped. Its content is ``Encrypt``, what
        ``msg_signature`` covers (in compatible mode the plaintext beside it is ignored).

        Kept for ``DEDUP_SECONDS`` (default an hour), past the timestamp window, in the same
        round trip as the message's dedup claim. Fails open like the message dedup: with the
        store down, nothing is refused. Also refused: a request whose twin is binding the
        signature at this very moment (a store record in progress); WeChat sends no two at
        once, and retries a refused one.
        """
        return f"{appid}:sig:{signature}", "sha256:" + hashlib.sha256(signed).hexdigest()

    def _check_size(self, body: bytes) -> None:
        if len(body) > self._settings.webhook_max_body_bytes:
            raise PayloadTooLarge("payload too large")

    def _app(self, appid: str) -> AppConfig:
        return self._apps.get(appid)  # UnknownAppError → 404

    @staticmethod
    def _token(app: AppConfig) -> str:
        if not app.token:
            # Without its Token nothing WeChat sends can be verified: as good as unknown.
            raise UnknownAppError(app.appid)
        return app.token

    def _fresh_timestamp(self, query: Mapping[str, str]) -> tuple[str, str]:
        """``(timestamp, nonce)`` when the timestamp is WeChat's and inside the window.

        Raises :class:`SignatureMismatch` (403) for anything else, before ``int()`` sees it.
        """
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not _is_unix_seconds(timestamp) or not nonce:
            raise SignatureMismatch("forbidden")
        if abs(self._clock() - int(timestamp)) > self._settings.webhook_timestamp_window_seconds:
            raise SignatureMismatch("forbidden")
        return timestamp, nonce

    def _crypto(self, app: AppConfig) -> MessageCrypto:
        if not app.encoding_aes_key:
            logger.error(
                "encrypted message for an app without encoding_aes_key in the apps secret",
                extra={"appid": app.appid},
            )
            raise MalformedMessage("malformed message")
        key = (app.appid, app.encoding_aes_key)
        crypto = self._cryptos.get(key)  # a dict read is atomic: the lock only guards a miss
        if crypto is None:
            with self._cryptos_lock:
                crypto = self._cryptos.get(key)
                if crypto is None:
                    crypto = self._cryptos[key] = MessageCrypto(app.encoding_aes_key, app.appid)
        return crypto

    def _encrypt_reply(self, crypto: MessageCrypto, token: str, reply_xml: str) -> str:
        encrypt = crypto.encrypt(reply_xml)
        timestamp = str(int(self._clock()))
        # Any digits will do: the nonce only feeds the signature, and WeChat's samples draw it
        # from a plain PRNG, as here: 0.2 µs, where os.urandom took 0.6 (a system call) and
        # secrets.randbelow 2.6. The reply's secrecy is the AES key's and its 16 random bytes'.
        nonce = str(random.getrandbits(32))
        return encrypted_reply(
            encrypt=encrypt,
            signature=sha1_signature(token, timestamp, nonce, encrypt),
            timestamp=timestamp,
            nonce=nonce,
        )


def _signed_content(appid: str, signer: str, encrypt: str | None, body: bytes) -> bytes:
    """What a signature is bound to (:meth:`Webhook._signature_binding`): in safe mode the
    ``Encrypt`` that ``msg_signature`` covers, else the body. For an authorizer (``appid`` is
    not the signer's) the URL's appid is signed by nothing (neither the signature nor the
    ciphertext names it): bound with the content, a request captured on its way to one
    authorizer's URL and replayed to another's is refused, not answered as a message of the
    other account."""
    signed = b"aes:" + encrypt.encode() if encrypt is not None else b"plain:" + body
    if appid != signer:
        signed = b"for:" + appid.encode() + b":" + signed
    return signed


def _require_appid(appid: str) -> None:
    """:class:`BadRequest` (400) unless ``appid`` is shaped like one: the authorizer's appid
    comes from the URL (WeChat's ``$APPID$``), and goes into dedup keys and the handler's
    context."""
    if not is_appid(appid):
        raise BadRequest("bad request")


def _default_tokens() -> TokenClient:
    """The process's token client, for a Webhook built without one (tests, benchmarks)."""
    from wxtoken.client import get_client

    return get_client()


def _encodable(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form: not so with a lone surrogate, which a Lambda event can
    carry (JSON's ``\\ud800`` escapes decode to one) and WeChat never sends."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_unix_seconds(timestamp: str) -> bool:
    """Whether ``timestamp`` is written as WeChat writes it: unix seconds in ASCII digits.

    ``str.isdigit()`` alone also says yes to ``²`` or ``①`` (``int()`` refuses them with a
    ValueError) and to ``١٢٣`` or fullwidth digits (``int()`` reads them), and ``int()``
    refuses more than 4,300 digits (CPython's ``sys.int_info.str_digits_check_threshold``): an
    uncaught ValueError is a Lambda error, a 500 from API Gateway, on an unsigned request.
    """
    return 0 < len(timestamp) <= _MAX_TIMESTAMP_DIGITS and timestamp.isascii() and timestamp.isdigit()


def _event_of(message: Message) -> str | None:
    return message.event if isinstance(message, Event) else None


def _metric_type(message: Message) -> str:
    """The MsgType dimension: ``text``, ``image``, …, or ``event:<event>`` (lower case)."""
    kind = f"event:{message.event}" if isinstance(message, Event) else message.msg_type.lower()
    return kind[:64]  # a dimension value; WeChat's names are short
