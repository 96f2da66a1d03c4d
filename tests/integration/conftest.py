"""A whole refresh system per test: apps secret in moto, a real store, the WeChat stand-in.

``system`` is parametrized over every store, so every refresh behaviour is pinned on SSM and
DynamoDB (moto) and on a real Redis server alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fixtures.aws import TOKEN_TABLE, create_token_table
from tests.fixtures.wechat import APPID_A, APPID_B, SECRET_A, SECRET_B
from wxtoken.apps import AppsSource
from wxtoken.config import Settings
from wxtoken.refresh import Refresher
from wxtoken.refresh.wiring import build_refresher
from wxtoken.store import open_store
from wxtoken.store.base import Credential, RecordName, TokenStore
from wxtoken.store.ssm_store import SSMTokenStore
from wxtoken.wechat.wiring import build_wechat_api

APPS_SECRET_ID = "wxtoken/apps"


@dataclass
class System:
    kind: str
    env: dict[str, str]
    wechat: Any
    clock: Any
    aws: Any
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def put_apps(self, apps: dict[str, dict[str, Any]]) -> None:
        self.apps = apps
        self.aws.client("secretsmanager").put_secret_value(
            SecretId=APPS_SECRET_ID, SecretString=json.dumps(apps)
        )

    def store(self) -> TokenStore:
        return open_store(self.settings, clock=self.clock)

    def refresher(self, **env_overrides: str) -> Refresher:
        settings = Settings.from_env({**self.env, **env_overrides})
        apps = AppsSource(settings.apps_secret_id, max_age=0)
        return build_refresher(settings, clock=self.clock, apps=apps)

    def ssm_refresher(self) -> tuple[Refresher, SSMTokenStore]:
        """A refresher on an SSM store whose boto3 client a test can inject errors into."""
        settings = self.settings
        store = SSMTokenStore.from_settings(settings, clock=self.clock)
        refresher = Refresher(
            settings=settings,
            store=store,
            wechat=build_wechat_api(settings),
            apps=AppsSource(settings.apps_secret_id, max_age=0),
            clock=self.clock,
        )
        return refresher, store

    def stored(self, appid: str, name: RecordName = RecordName.ACCESS_TOKEN) -> Credential | None:
        raw = self.store().read(appid, name)
        return Credential.from_record(name, raw) if raw else None

    def raw(self, appid: str, name: RecordName = RecordName.ACCESS_TOKEN) -> str | None:
        """The stored bytes, straight from the backend, as another language would read them."""
        if self.kind == "ssm":
            ssm = self.aws.client("ssm")
            try:
                answer = ssm.get_parameter(Name=f"/wxtoken/{appid}/{name}", WithDecryption=True)
            except ssm.exceptions.ParameterNotFound:
                return None
            return answer["Parameter"]["Value"]
        if self.kind == "dynamodb":
            item = self.aws.client("dynamodb").get_item(
                TableName=TOKEN_TABLE, Key={"name": {"S": f"{appid}/{name}"}}, ConsistentRead=True
            )
            return item["Item"]["value"]["S"] if "Item" in item else None
        import redis

        value = redis.Redis.from_url(self.env["REDIS_URL"]).get(f"wxtoken:{{{appid}}}:{name}")
        return value.decode() if value else None

    def put_raw(self, appid: str, name: RecordName | str, raw: str) -> None:
        """Write ``raw`` as the record, bypassing wxtoken (the console, redis-cli, a hand edit)."""
        if self.kind == "ssm":
            self.aws.client("ssm").put_parameter(
                Name=f"/wxtoken/{appid}/{name}", Value=raw, Type="SecureString", Overwrite=True
            )
        elif self.kind == "dynamodb":
            self.aws.client("dynamodb").put_item(
                TableName=TOKEN_TABLE, Item={"name": {"S": f"{appid}/{name}"}, "value": {"S": raw}}
            )
        else:
            import redis

            redis.Redis.from_url(self.env["REDIS_URL"]).set(f"wxtoken:{{{appid}}}:{name}", raw)

    @property
    def dedup_table(self) -> bool:
        """Whether the webhook dedups in the DedupTable (SSM), not in the store itself."""
        return self.kind == "ssm"


@pytest.fixture(params=["ssm", "redis", "dynamodb"])
def system(request, aws, wechat, clock, monkeypatch) -> System:
    env = {
        "WECHAT_APPS_SECRET_ID": APPS_SECRET_ID,
        "TOKEN_STORE": request.param,
        "WECHAT_API_BASE": wechat.base_url,
        "WECHAT_READ_TIMEOUT": "0.5",
        "WECHAT_CONNECT_TIMEOUT": "0.5",
        "WECHAT_MAX_ATTEMPTS": "3",
        "APPS_SECRET_CACHE_SECONDS": "1",
    }
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    if request.param == "dynamodb":
        env["TOKEN_TABLE"] = create_token_table(aws)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    aws.client("secretsmanager").create_secret(Name=APPS_SECRET_ID, SecretString="{}")
    system = System(request.param, env, wechat, clock, aws)
    system.put_apps(
        {
            APPID_A: {"app_secret": SECRET_A, "jsapi_ticket": True},
            APPID_B: {"app_secret": SECRET_B},
        }
    )
    return system
