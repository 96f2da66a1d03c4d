"""The error types wxtoken raises, so callers branch on type rather than on strings.

Every message is safe to log: no AppSecret, token or AES key ever goes into one.
"""

from __future__ import annotations


class WxTokenError(Exception):
    """Base of everything wxtoken raises on purpose."""


class ConfigError(WxTokenError):
    """The environment or the apps secret is missing something or holds a bad value."""


class UnknownAppError(WxTokenError):
    """An appid that is not in the apps secret."""

    def __init__(self, appid: str) -> None:
        super().__init__(f"appid {appid!r} is not configured in the apps secret")
        self.appid = appid


class MisconfiguredAppError(ConfigError):
    """The app's entry in the apps secret is not usable (a 42-character EncodingAESKey, a
    Token with ``-``): that app alone fails, the others go on."""

    def __init__(self, appid: str, message: str) -> None:
        super().__init__(message)
        self.appid = appid


class StoreError(WxTokenError):
    """The token store (SSM or Redis) could not be read or written; nothing was lost."""


class DamagedRecordError(StoreError):
    """A stored record that cannot be read as one (not JSON, a missing or non-finite field).

    The refresher replaces it on its next run, whatever triggered it; readers answer that no
    usable token is stored (503) rather than failing.
    """


class LeaseBusyError(StoreError):
    """Another process holds the refresh lease of this app right now."""


class RefreshInProgressError(WxTokenError):
    """Another refresh of this app held the lease for longer than this call could wait."""


class ForceRefreshRefusedError(WxTokenError):
    """A forced refresh was refused before it could burn WeChat's force_refresh quota."""


class WeChatAPIError(WxTokenError):
    """WeChat answered with a non-zero errcode (or not at all, for the transport subclass)."""

    # Set by the API client: an earlier attempt of the same call failed in a way WeChat may
    # have processed (a token call may have minted), whatever this last attempt says.
    processed_earlier: bool = False
    # False when raised before any request was sent (a missing ticket or refresh token): no
    # credential can have been minted, so the stored one is not suspect.
    sent: bool = True

    def __init__(self, errcode: int | None, errmsg: str, hint: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.hint = hint
        text = f"WeChat errcode {errcode}: {errmsg}" if errcode is not None else errmsg
        super().__init__(f"{text} — {hint}" if hint else text)


class RetryableWeChatError(WeChatAPIError):
    """A failure worth another try: system busy (-1), a timeout, a 5xx, a garbled body."""


class WeChatTransportError(RetryableWeChatError):
    """No usable answer: timeout, connection error, HTTP 5xx or a body that is not JSON."""

    def __init__(self, message: str, *, maybe_processed: bool = True, maybe_in_flight: bool = False) -> None:
        super().__init__(None, message)
        # False only when WeChat certainly never saw the request (refused, connect timeout,
        # 429): then even a call that mints a new token is safe to send again.
        self.maybe_processed = maybe_processed
        # True after a read timeout: WeChat may still be working on the request, and may
        # mint its token after a replay's.
        self.maybe_in_flight = maybe_in_flight


class InvalidCredentialError(WeChatAPIError):
    """The appid or AppSecret is wrong (40001 on the token API, 40013, 40125)."""


class IPNotAllowlistedError(WeChatAPIError):
    """The caller's egress IP is not on the app's IP allow-list (40164, 89503)."""


class QuotaExceededError(WeChatAPIError):
    """WeChat's daily quota for this API is used up (45009) or a rate limit was hit."""


class TokenRejectedError(WeChatAPIError):
    """An API call was refused because its access_token is invalid or expired."""


class ComponentTicketError(WeChatAPIError):
    """A third-party platform's component_verify_ticket is expired or not WeChat's (61005,
    61006), or none has been received: no component token can be fetched until a push arrives."""


class RefreshTokenRejectedError(WeChatAPIError):
    """WeChat refused an authorizer_refresh_token (61023): it was replaced or revoked. The
    current one is in api_get_authorizer_list; if it is not there, the account must authorize
    the platform again."""


class BadRequest(WxTokenError):
    """A request to the webhook that is malformed or not signed by WeChat."""


class InvalidEventError(WxTokenError):
    """A refresh invocation whose payload is none of the documented shapes."""


class RefreshFailedError(WxTokenError):
    """At least one app failed; raised after all apps ran so Lambda retries the run.

    The message is the whole report (JSON), which the on-failure destination keeps.
    """


class RefreshRequestError(WxTokenError):
    """A reader asked the refresh function for a compare-and-refresh, and it failed."""


class TokenUnavailableError(WxTokenError):
    """The store holds no usable token (or ticket) for the app: nothing to hand out."""


class SignatureMismatch(BadRequest):
    """The request is not signed by WeChat: signature missing or wrong, or the timestamp is stale (403)."""


class Unauthenticated(BadRequest):
    """A token API request without an IAM identity: the route's AWS_IAM authorization was
    bypassed (a misconfigured route, a direct invoke) (403)."""


class PayloadTooLarge(BadRequest):
    """The request body is larger than any callback WeChat sends (413)."""


class MalformedMessage(BadRequest):
    """The body is not a message WeChat would send: bad XML, a DTD or entity, a ciphertext that
    does not decrypt to this app's message (400).

    Every cause carries the same short message on purpose, so a caller learns nothing about
    which check failed.
    """

    def __init__(self, message: str = "malformed message") -> None:
        super().__init__(message)
