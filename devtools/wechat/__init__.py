"""A WeChat simulator: the API stand-in (SANDBOX, not WeChat), a player that signs callbacks
like WeChat, the sample app, and calls to a local webhook."""
