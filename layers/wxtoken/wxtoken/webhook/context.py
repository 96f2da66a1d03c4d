"""What a business handler may want besides the message: who sent it, to which app, how long
it has left, and a client for calls back to WeChat.

A handler opts in by taking a second parameter (``def on_text(message, context)``); one that
takes only the message keeps working (see :mod:`wxtoken.webhook.router`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wxtoken.deadline import Deadline
from wxtoken.frozen import Frozen
from wxtoken.wechat.messages import Message

if TYPE_CHECKING:
    from wxtoken.client import TokenClient


class HandlerContext(Frozen):
    """One delivery, as a handler sees it.

    - ``appid``: the account the callback came for (the URL's ``/wechat/{appid}``, or for an
      account that authorized a third-party platform its ``/open/{component_appid}/{appid}``:
      the authorizer, never the component);
    - ``openid``: the sender, WeChat's ``FromUserName`` — whom a customer-service message
      goes to (``touser``);
    - ``message``: the parsed message, the handler's first argument again;
    - ``deadline``: the handler's own budget (``WEBHOOK_HANDLER_TIMEOUT_SECONDS``). Past it
      WeChat is answered ``success`` and the reply is dropped, because WeChat gives up on a
      passive reply after 5 s (被动回复用户消息). Hand it to :meth:`TokenClient.call`
      (``deadline=``) so a call to WeChat does not outlive the reply it was for;
    - :attr:`tokens`: the container's :class:`~wxtoken.client.TokenClient`, built on first use
      (the message path needs no HTTP client unless a handler calls WeChat).
    """

    # A Frozen value class, not a dataclass: about 1 ms less of the webhook's cold start
    # (wxtoken.frozen); the token client is left out of its repr, equality and hash.
    _hidden = frozenset({"token_client"})
    _uncompared = frozenset({"token_client"})

    appid: str
    openid: str
    message: Message
    deadline: Deadline
    token_client: Callable[[], TokenClient]

    @property
    def tokens(self) -> TokenClient:
        """The token client, for ``context.tokens.call(context.appid, "POST", path, json=…)``."""
        return self.token_client()

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """``tokens.call`` for this app, inside this handler's deadline unless told otherwise.

        Raises what :meth:`TokenClient.call` raises (:class:`~wxtoken.errors.WeChatAPIError`
        and its kin).
        """
        kwargs.setdefault("deadline", self.deadline)
        return self.tokens.call(self.appid, method, path, **kwargs)
