"""Shared fixtures live in tests/fixtures/; each module owns one real dependency."""

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.redis_proxy",
    "tests.fixtures.aws",
    "tests.fixtures.wechat",
]
