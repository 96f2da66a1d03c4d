"""How long each network call may take, derived from the webhook's 5 s.

WeChat drops a callback it has no answer to within 5 s, retries it, and after the last
retry shows the user "该公众号暂时无法提供服务"; the webhook Lambda's Timeout is 6 s
(template.yaml). A request on the message path may meet three dependencies in a row, each
of which can be dead: the apps secret (Secrets Manager, cached 300 s), the dedup store
(DynamoDB or Redis) and, from a business handler, one token-store read (SSM or Redis).
``GET /token`` meets the apps secret, the Redis AUTH secret on a cold start and one store
read. Each must fail with a typed error early enough that the webhook still answers (a 503
for a dead dependency is fine; a Lambda timeout is not).

The budget, against a dependency that never answers (connection never completes, or
completes and then silence): each call fails after ``attempts × timeout`` plus its backoff.

============================  =======  ====  ========  ===============  ===========
call                          connect  read  attempts  black hole fail  worst case
============================  =======  ====  ========  ===============  ===========
secret (apps, Redis AUTH)     0.5      0.5   2         ≈ 1.0 s          2.05 s
dedup table                   0.5      0.3   2         ≈ 0.6–1.0 s      1.63 s
token store (SSM)             0.5      0.75  3         ≈ 1.5–2.25 s     3.9 s
token store (Redis)           0.5      0.75  2         ≈ 1.0–1.5 s      2.6 s
refresh invoke (reader)       0.5      1.5   2         ≈ 1.0–3.0 s      4.05 s
============================  =======  ====  ========  ===============  ===========

So the message path against dead dependencies answers in about 1 s (apps secret dead:
503; nothing else is tried) or 3.25 s (secret cached, dedup and store dead: handled
without dedup, the handler's store read fails), leaving WeChat's 5 s room for API
Gateway, the network from WeChat's servers and a cold start. "Worst case" adds the
connect and read timeouts of every attempt (a connection that completes just before its
timeout and then hangs); each is under 5 s, so no single call can run the Lambda out.
Healthy calls are far inside these figures: AWS in-region TCP connects take milliseconds,
GetSecretValue, GetParameter and PutItem tens of milliseconds.

botocore's rules these numbers rest on (retry mode ``standard``):

- ``total_max_attempts`` counts the first call (``max_attempts`` in the same dict counts
  retries only, ``AWS_MAX_ATTEMPTS`` counts all): 2 means one retry.
- A connect or read timeout is a transient error and is retried; the wait before retry
  ``i`` (1-based) is ``rand(0, 1) × base × 2^(i-1)`` with ``base`` 50 ms (25 ms for
  DynamoDB) after a timeout and 1 s after throttling (botocore.retries.standard
  ExponentialBackoff). A throttled call is answered quickly, so one throttling retry costs
  at most 1 s of waiting plus one fast call.
- ``read_timeout`` bounds each wait for bytes, not the whole response: a server that trickles
  bytes can outlast it. A black hole sends nothing.

Without these, boto3 waits 60 s to connect and 60 s to read, in legacy mode with up to 5
attempts: minutes, far past the Lambda's Timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wxtoken.frozen import Frozen

if TYPE_CHECKING:
    from botocore.config import Config

WECHAT_ANSWER_SECONDS = 5.0
"""WeChat drops a passive-reply callback not answered within this (its message docs)."""

# botocore.retries.standard.ExponentialBackoff: the base of the wait after a timeout or a
# 5xx (DynamoDB's is 25 ms, this is the larger one).
_TRANSIENT_BACKOFF_BASE = 0.05


class CallBudget(Frozen):
    """Timeouts and attempts of one kind of call; ``attempts`` counts the first call."""

    connect_timeout: float
    read_timeout: float
    attempts: int

    @property
    def backoff_seconds(self) -> float:
        """The most botocore waits between attempts after timeouts (jitter is ``rand(0, 1)``)."""
        return sum((_TRANSIENT_BACKOFF_BASE * 2.0**i for i in range(self.attempts - 1)), 0.0)

    @property
    def black_hole_seconds(self) -> float:
        """When a call fails against a peer that never connects, or connects and never answers."""
        return self.attempts * max(self.connect_timeout, self.read_timeout) + self.backoff_seconds

    @property
    def worst_case_seconds(self) -> float:
        """The bound: every attempt connects just before its timeout, then gets no answer."""
        return self.attempts * (self.connect_timeout + self.read_timeout) + self.backoff_seconds

    def botocore_config(self) -> Config:
        """A botocore ``Config`` with these timeouts and standard-mode retries."""
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.attempts},
        )


SECRET = CallBudget(connect_timeout=0.5, read_timeout=0.5, attempts=2)
"""Secrets Manager reads: the apps secret and the Redis AUTH secret. Both are cached
(``APPS_SECRET_CACHE_SECONDS``), so this is paid on a cold start or once per cache window.
One retry covers a lost packet or a stale pooled connection; a dead Secrets Manager gives
the webhook a 503 within about 1 s, and WeChat retries the callback."""

DEDUP = CallBudget(connect_timeout=0.5, read_timeout=0.3, attempts=2)
"""The dedup table (PutItem/GetItem/UpdateItem, single-digit milliseconds when healthy). A
dedup store that fails costs only dedup (the message is handled anyway), so it gets the
least time."""

TOKEN_STORE = CallBudget(connect_timeout=0.5, read_timeout=0.75, attempts=3)
"""Token-store calls: SSM GetParameter/PutParameter, and the Redis socket timeouts. Shared by
the refresh function, the webhook and every reader. SSM throttles at a low TPS (GetParameter
40 TPS by default, shared by the account), so two throttling retries stay: at most 1 s and
2 s of backoff between three fast answers, about 3 s. Against a black hole a call fails in
1.5 s (never connects) to 2.25 s (never answers). Redis does not throttle: it keeps
redis-py's one retry (a pooled connection the server closed), so 1.0–1.5 s."""

REFRESH_INVOKE = CallBudget(connect_timeout=0.5, read_timeout=1.5, attempts=2)
"""The webhook's synchronous invoke of the refresh function for a compare-and-refresh (one
WeChat call under the app's lease, about a second when warm). A first attempt that times
out still runs to the end in the refresh function; the retry then usually finds the token
already replaced and returns at once. The webhook's business handler gets 4 s in all, so
a longer wait would only hold a handler thread."""

READER_REFRESH_INVOKE = CallBudget(connect_timeout=1.0, read_timeout=12.0, attempts=2)
"""The same invoke from any other reader (:class:`~wxtoken.client.TokenClient` in your own
services), which has no 5 s limit: a cold refresh function plus a slow WeChat answer can
take several seconds, and giving up early would fail a call whose refresh succeeds. 12 s
covers the refresh's WeChat budget for one attempt (3 s connect + 5 s read) and a cold start."""
