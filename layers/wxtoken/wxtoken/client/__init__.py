"""What readers use: :class:`TokenClient` and :func:`get_client` (see :mod:`.token_client`).

Readers never import the writer: a compare-and-refresh goes to the refresh function
(:mod:`.requesters`), unless the reader is configured to refresh in its own process.
"""

from wxtoken.client.requesters import LambdaRefreshRequester, RefreshRequester, UnconfiguredRefreshRequester
from wxtoken.client.token_client import TokenClient, get_client

__all__ = [
    "LambdaRefreshRequester",
    "RefreshRequester",
    "TokenClient",
    "UnconfiguredRefreshRequester",
    "get_client",
]
