"""Kept for handlers written against earlier versions: the router now lives in
:mod:`wxtoken.webhook.router` (``from wxtoken.webhook import MessageRouter``)."""

from wxtoken.webhook.router import Handler, MessageRouter

__all__ = ["Handler", "MessageRouter"]
