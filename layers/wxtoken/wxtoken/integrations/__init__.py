"""Drop-ins for other WeChat SDKs, so that their clients read wxtoken's token instead of
fetching their own (each ``/cgi-bin/token`` call elsewhere retires the stored token).

Each SDK is an optional dependency: nothing here is imported by ``import wxtoken``, and
each module imports its SDK only when it is itself imported.

- :mod:`wxtoken.integrations.wechatpy`: ``WeChatClient`` for wechatpy 1.8
  (``pip install "wxtoken[wechatpy]"``).
"""
