"""wxtoken: one central refresher for WeChat access tokens, many readers.

The refresh Lambda is the only writer of tokens; everything else reads them from the
store (SSM Parameter Store or Redis) through :mod:`wxtoken.store`.
"""

__version__ = "0.1.0"
