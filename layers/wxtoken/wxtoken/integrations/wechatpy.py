"""A drop-in for wechatpy's ``WeChatClient`` that takes its token from wxtoken::

    from wechatpy import WeChatClient                       # before
    from wxtoken.integrations.wechatpy import WeChatClient  # after

    client = WeChatClient("wx0123456789abcdef")
    client.message.send_text(openid, "hello")

Why. wechatpy's client fetches ``/cgi-bin/token`` with the AppSecret itself and, when WeChat
answers 40001 / 40014 / 42001, fetches again and retries, with no bound on the rounds
(``BaseWeChatClient._handle_result``, ``auto_retry``). WeChat's getAccessToken rule
("重复获取将导致上次获取的access_token失效"; the previous token lives 5 more minutes) makes
each of those fetches retire the token every other reader holds: two such processes keep
retiring each other's. This client never calls the token API; it reads the central store
through :class:`~wxtoken.client.TokenClient` and, on a rejected token, asks the refresh
function for exactly one compare-and-refresh and retries the call once.

Everything else is wechatpy's: the API objects (``client.message``, ``client.menu``,
``client.user``, ...), ``timeout``, ``session`` (still used for wechatpy's own JS-SDK ticket
cache, never for the access token), and the exceptions. Calls go to ``WECHAT_API_BASE``
as read by wxtoken's settings (a proxy, or the stand-in in tests).
"""

from __future__ import annotations

import contextvars
import time
from typing import Any, Final

try:
    from wechatpy import WeChatClient as _WeChatPyClient
    from wechatpy.exceptions import WeChatClientException
except ImportError as exc:  # wechatpy, or one of its own dependencies, is missing
    raise ImportError(
        'wxtoken.integrations.wechatpy needs wechatpy: pip install "wxtoken[wechatpy]"'
    ) from exc

from wxtoken.client import TokenClient, get_client
from wxtoken.config import DEFAULT_WECHAT_API_BASE
from wxtoken.observability import logger
from wxtoken.wechat.errcodes import TOKEN_REJECTED_CODES

__all__ = ["WeChatClient", "WeChatClientException"]

# True while this context is making the one retry after a compare-and-refresh: a rejection
# then is raised, never answered with another refresh.
_RETRYING: Final = contextvars.ContextVar("wxtoken_wechatpy_retrying", default=False)


class WeChatClient(_WeChatPyClient):  # type: ignore[misc]  # wechatpy ships no types
    """wechatpy's ``WeChatClient`` with its access token from wxtoken.

    ``secret`` is not needed: no token is ever fetched with it. It is kept only because a
    few wechatpy APIs send it themselves (``wxa.code_to_session``, card signing), so existing
    ``WeChatClient(appid, secret)`` lines keep working unchanged. ``access_token`` must be
    left out (the token is wxtoken's). ``session``, ``timeout`` and ``auto_retry`` mean what
    they mean in wechatpy; ``auto_retry=False`` raises a rejected token at once.
    ``token_client`` defaults to :func:`wxtoken.client.get_client` (built from the
    environment: see docs/wechatpy.md); pass one to share it or in tests.

    Errors. WeChat's answers raise wechatpy's ``WeChatClientException`` as in wechatpy (a
    rejection of the replacement token too, with a hint in ``errmsg``). When wxtoken cannot
    supply a token, its own errors propagate: ``TokenUnavailableError``, ``StoreError``,
    ``RefreshRequestError`` (all ``WxTokenError``; their messages name the fix).
    """

    def __init__(
        self,
        appid: str,
        secret: str | None = None,
        access_token: None = None,
        session: Any = None,
        timeout: float | None = None,
        auto_retry: bool = True,
        *,
        token_client: TokenClient | None = None,
    ) -> None:
        if access_token is not None:
            raise ValueError(
                "wxtoken's WeChatClient reads the access token from the central store: "
                "drop access_token= (or use wechatpy's own client for a fixed token)"
            )
        super().__init__(appid, secret, None, session, timeout, auto_retry)
        self._tokens = token_client if token_client is not None else get_client()
        self._api_base = self._tokens.wechat_api_base

    @property
    def access_token(self) -> str:
        """The app's stored token (wxtoken's per-process cache, then the store).

        Raises ``TokenUnavailableError`` / ``StoreError`` like :meth:`TokenClient.access_token`.
        """
        return self._tokens.access_token(self.appid)

    def fetch_access_token(self) -> dict[str, Any]:
        """wechatpy's "get a token" hook, answered from wxtoken: never ``/cgi-bin/token``.

        Returns ``{"access_token", "expires_in"}`` as wechatpy's does; sets ``expires_at``.
        """
        credential = self._tokens.credential(self.appid)
        self.expires_at = credential.expires_at
        expires_in = max(0, int(credential.expires_at - time.time()))
        return {"access_token": credential.value, "expires_in": expires_in}

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        # wechatpy hard-codes https://api.weixin.qq.com (its API_BASE_URL, each API object's
        # own base, some absolute URLs): send them all to WECHAT_API_BASE instead.
        if not url_or_endpoint.startswith(("http://", "https://")):
            base = kwargs.pop("api_base_url", self.API_BASE_URL)
            url_or_endpoint = f"{base}{url_or_endpoint}"
        return super()._request(method, _rebase(url_or_endpoint, self._api_base), **kwargs)

    def _handle_result(
        self,
        res: Any,
        method: str | None = None,
        url: str | None = None,
        result_processor: Any = None,
        **kwargs: Any,
    ) -> Any:
        result = res if isinstance(res, dict) else self._decode_result(res)
        errcode = _errcode(result)
        if errcode not in TOKEN_REJECTED_CODES:
            return super()._handle_result(res, method, url, result_processor, **kwargs)
        # wechatpy would fetch a token here and retry, round after round. Instead: one
        # compare-and-refresh of the token WeChat rejected, one retry with its replacement.
        params = kwargs.get("params")
        rejected = params.get("access_token") if isinstance(params, dict) else None
        hint = ""
        if self.auto_retry and isinstance(params, dict) and isinstance(rejected, str) and method and url:
            if _RETRYING.get():
                hint = (
                    "rejected again right after a refresh: something outside wxtoken is fetching "
                    "tokens for this app (each /cgi-bin/token call retires the previous token); "
                    "make wxtoken the only caller of the token API"
                )
            else:
                logger.debug("token rejected; asking for a compare-and-refresh", extra={"appid": self.appid})
                replacement = self._tokens.replace_rejected(self.appid, rejected)
                if replacement is not None:
                    params["access_token"] = replacement
                    retrying = _RETRYING.set(True)
                    try:
                        return self._request(
                            method=method, url_or_endpoint=url, result_processor=result_processor, **kwargs
                        )
                    finally:
                        _RETRYING.reset(retrying)
                hint = "the refresh function kept the rejected token: see its logs"
        errmsg = (result.get("base_resp") if "errmsg" not in result else None) or result
        errmsg = errmsg.get("errmsg", errcode) if isinstance(errmsg, dict) else errcode
        raise WeChatClientException(
            errcode,
            f"{errmsg} ({hint})" if hint else errmsg,
            client=self,
            request=getattr(res, "request", None),
            response=None if isinstance(res, dict) else res,
        )


def _rebase(url: str, api_base: str) -> str:
    """``url`` on ``api_base`` if it is on WeChat's default API origin."""
    if api_base != DEFAULT_WECHAT_API_BASE and (
        url == DEFAULT_WECHAT_API_BASE or url.startswith(DEFAULT_WECHAT_API_BASE + "/")
    ):
        return api_base + url[len(DEFAULT_WECHAT_API_BASE) :]
    return url


def _errcode(result: Any) -> int | None:
    """WeChat's errcode in a decoded answer (wechatpy accepts it as a string too). The device
    APIs nest it in ``base_resp``, which wechatpy's ``_handle_result`` lifts to the top before
    its own retry: read it there too, or a rejected token would reach that unbounded retry."""
    if not isinstance(result, dict):
        return None
    base_resp = result.get("base_resp")
    if "errcode" not in result and isinstance(base_resp, dict):
        result = base_resp
    try:
        return int(result.get("errcode", 0))
    except (TypeError, ValueError):
        return None
