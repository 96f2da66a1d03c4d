"""What the refresh path refreshes: an app's token, a platform's component token, or an
authorizer's token — each kept in its own record, minted by its own WeChat call.

The single-flight, mint-intent and compare-and-set rules of :class:`~wxtoken.refresh.Refresher`
are the same for all three: each of these calls hands out a new credential and (WeChat's rule
for ``/cgi-bin/token``, which the component and authorizer tokens follow in the stand-in and
in every SDK's experience) leaves the previous one valid for 5 minutes at most.
"""

from __future__ import annotations

from collections.abc import Callable

from wxtoken.deadline import Deadline
from wxtoken.frozen import Frozen
from wxtoken.store.base import RecordName
from wxtoken.wechat.api import Grant

Mint = Callable[[Deadline, bool], Grant]
"""``mint(deadline, force)``: one call to WeChat for a new credential."""


class Subject(Frozen):
    """One credential to keep alive.

    ``stable``: minted through stable_token, whose normal mode retires nothing (no mint
    intent is written unless forced). ``per_app_metrics``: report it under its own appid
    dimension — true for the handful of apps in the secret, false for authorizers (a
    CloudWatch metric per appid costs USD 0.30 a month; thousands would cost more than the
    rest of the stack). ``what`` names it in logs.
    """

    _hidden = frozenset({"mint"})
    _unhashed = frozenset({"mint"})

    appid: str
    mint: Mint
    token_record: RecordName = RecordName.ACCESS_TOKEN
    intent_record: RecordName = RecordName.MINT_INTENT
    stable: bool = False
    per_app_metrics: bool = True
    what: str = "access token"
