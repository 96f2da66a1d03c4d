"""The apps secret: which Official Accounts wxtoken serves, and their credentials.

One Secrets Manager secret holds JSON keyed by appid::

    {"wx0123456789abcdef": {"app_secret": "…", "token": "…", "encoding_aes_key": "…",
                            "jsapi_ticket": true}}

An entry may instead be a WeChat Open Platform third-party platform (第三方平台), by its
component appid::

    {"wxCOMPONENT…": {"kind": "component", "app_secret": "<component_appsecret>",
                      "token": "…", "encoding_aes_key": "…", "jsapi_ticket": false}}

``kind`` defaults to ``app``. A component's ``token`` and ``encoding_aes_key`` are the
platform's 消息校验Token and 消息加解密Key (WeChat encrypts the ticket pushes, authorization
events and its authorizers' messages with them); its ``jsapi_ticket`` is the default for
every authorizer. Authorizers are not in the secret: they come from WeChat.

The webhook may read a second one instead, the *webhook secret* (``WECHAT_WEBHOOK_SECRET_ID``),
with the same keys but no ``app_secret``: ``{"wx…": {"token": "…", "encoding_aes_key": "…"}}``.
The webhook faces the internet and runs the user's own code; an AppSecret lets its holder
mint tokens (and so invalidate everyone else's), so the function that never mints should
never hold one (IAM, "Apply least-privilege permissions").

It is read with a cache (``max_age``; :class:`wxtoken.secret_values.SecretString`), so a
warm container calls Secrets Manager at most once per cache window while a rotated secret
still takes effect within minutes. The read runs on the webhook's 5 s budget
(:data:`wxtoken.budget.SECRET`): a dead Secrets Manager is a ConfigError within about a
second, not boto3's 60 s timeouts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from wxtoken.errors import ConfigError, MisconfiguredAppError, UnknownAppError
from wxtoken.frozen import Frozen
from wxtoken.secret_values import SecretReadError, SecretString

_APPID = re.compile(r"^wx[0-9A-Za-z]{8,32}$")
# WeChat's EncodingAESKey is 43 characters of base64 (a 32-byte key without its '=').
_AES_KEY = re.compile(r"^[A-Za-z0-9+/]{43}$")


def is_appid(text: str) -> bool:
    """Whether ``text`` is shaped like a WeChat appid: ``wx`` and 8 to 32 letters or digits
    (the whole of it: a URL segment with a newline or a slash is not one)."""
    return _APPID.fullmatch(text) is not None


class SecretShape(Frozen):
    """Which secret is parsed: its name in messages, and whether each entry needs an AppSecret."""

    name: str
    needs_app_secret: bool


APPS_SECRET = SecretShape("apps secret", needs_app_secret=True)
# An app_secret found in the webhook secret is dropped at parse time: the webhook never uses it.
WEBHOOK_SECRET = SecretShape("webhook secret", needs_app_secret=False)


class AppKind(StrEnum):
    """What an entry of the secret is: an account with its own AppSecret, or a third-party
    platform whose authorizers' tokens wxtoken fetches with the component's token."""

    APP = "app"
    COMPONENT = "component"


class AppConfig(Frozen):
    _hidden = frozenset({"app_secret", "token", "encoding_aes_key"})  # secrets: never in a repr

    appid: str
    # None only for entries of the webhook secret, which holds no AppSecret.
    app_secret: str | None
    token: str | None = None
    encoding_aes_key: str | None = None
    jsapi_ticket: bool = False
    kind: AppKind = AppKind.APP


class AppProblem(Frozen):
    """An entry of the apps secret that cannot be used, and why.

    ``ref`` is the appid, or ``entry #N`` when the key is not an appid: a key that is not an
    appid may be a secret pasted in the wrong place, so it is never repeated.
    """

    ref: str
    message: str


class ParsedApps(Frozen):
    """The usable apps of the secret, its third-party platforms (``kind: component``), and
    the entries that are not usable (each on its own)."""

    apps: dict[str, AppConfig]
    problems: tuple[AppProblem, ...] = ()
    components: dict[str, AppConfig] = {}  # noqa: RUF012 - Frozen: never mutated


def parse_apps(secret_string: str, shape: SecretShape = APPS_SECRET) -> ParsedApps:
    """Validate the secret's JSON, each entry on its own: one bad entry never costs the others.

    Raises :class:`ConfigError` only when the secret as a whole is unusable (not JSON, not an
    object keyed by appid). Messages name the appid (or the entry's position) and the field,
    never a value. With ``shape=WEBHOOK_SECRET`` an entry needs no ``app_secret``, and one
    that has it is read without it.
    """
    name = shape.name
    try:
        raw = json.loads(secret_string)
    except ValueError:
        raise ConfigError(f"the {name} is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ConfigError(f'the {name} must be a JSON object keyed by appid: {{"wx…": {{…}}}}')
    apps: dict[str, AppConfig] = {}
    components: dict[str, AppConfig] = {}
    problems: list[AppProblem] = []
    for position, (appid, entry) in enumerate(raw.items(), start=1):
        if not _APPID.match(appid):
            problems.append(
                AppProblem(
                    f"entry #{position}",
                    f"entry #{position} of the {name}: its key is not an appid (wx followed by "
                    "letters/digits); the key is not shown, in case it is a secret pasted in the wrong place",
                )
            )
            continue
        try:
            app = _parse_app(appid, entry, shape)
        except ConfigError as exc:
            problems.append(AppProblem(appid, str(exc)))
            continue
        (components if app.kind is AppKind.COMPONENT else apps)[appid] = app
    return ParsedApps(apps, tuple(problems), components)


def _parse_app(appid: str, entry: Any, shape: SecretShape) -> AppConfig:
    name = shape.name
    if not isinstance(entry, dict):
        wanted = "an object with app_secret" if shape.needs_app_secret else 'an object ({} or {"token": …})'
        raise ConfigError(f"{name} entry {appid} must be {wanted}")
    raw_kind = entry.get("kind", AppKind.APP.value)
    if raw_kind not in (AppKind.APP.value, AppKind.COMPONENT.value):
        raise ConfigError(f'{name} entry {appid}: kind must be "app" (the default) or "component"')
    kind = AppKind(raw_kind)
    secret: str | None = None
    if shape.needs_app_secret:
        raw_secret = entry.get("app_secret")
        if not isinstance(raw_secret, str) or not raw_secret.strip():
            raise ConfigError(f"{name} entry {appid} has no app_secret")
        secret = raw_secret.strip()
    token = entry.get("token")
    if token is not None and (not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9]{3,32}", token)):
        raise ConfigError(f"{name} entry {appid}: token must be 3-32 letters or digits")
    aes_key = entry.get("encoding_aes_key")
    if aes_key is not None and (not isinstance(aes_key, str) or not _AES_KEY.match(aes_key)):
        raise ConfigError(f"{name} entry {appid}: encoding_aes_key must be 43 base64 characters")
    ticket = entry.get("jsapi_ticket", False)
    if not isinstance(ticket, bool):
        raise ConfigError(f"{name} entry {appid}: jsapi_ticket must be true or false")
    if kind is AppKind.COMPONENT and (token is None or aes_key is None):
        # WeChat encrypts every push to a platform (tickets, authorizations): without them
        # no ticket is ever read, and the component token can never be fetched.
        raise ConfigError(
            f"{name} entry {appid}: a component needs its token and encoding_aes_key (the "
            "platform's 消息校验Token and 消息加解密Key at open.weixin.qq.com)"
        )
    return AppConfig(appid, secret, token, aes_key, ticket, kind)


def _raise_if_misconfigured(parsed: ParsedApps, appid: str) -> None:
    """:class:`MisconfiguredAppError` with the reason, when ``appid``'s entry is not usable."""
    for problem in parsed.problems:
        if problem.ref == appid:
            raise MisconfiguredAppError(appid, problem.message)


class AppsSource:
    """The apps of the secret, re-read at most every ``max_age`` seconds.

    ``shape`` says which secret it is: the apps secret (the default; every entry has an
    AppSecret) or the webhook secret (:data:`WEBHOOK_SECRET`; none has).
    """

    def __init__(
        self,
        secret_id: str,
        *,
        max_age: int = 300,
        fetch: Callable[[], str] | None = None,
        shape: SecretShape = APPS_SECRET,
        boto3_session: Any = None,
    ) -> None:
        self.secret_id = secret_id
        self.shape = shape
        self._fetch = fetch
        self._parsed: tuple[str, ParsedApps] | None = None
        # Threads of one container share one reader and its cache: a burst of cold callers
        # makes one client and one read.
        self._reader = SecretString(secret_id, max_age=max_age, boto3_session=boto3_session)

    def all(self) -> Mapping[str, AppConfig]:
        """The usable apps (an entry that is not is left out: see :meth:`problems`)."""
        return self._parse().apps

    def components(self) -> Mapping[str, AppConfig]:
        """The usable third-party platforms (``kind: component``), by component appid."""
        return self._parse().components

    def component(self, appid: str) -> AppConfig:
        """The platform; :class:`UnknownAppError` if the secret has no such component,
        :class:`MisconfiguredAppError` if its entry is not usable."""
        parsed = self._parse()
        component = parsed.components.get(appid)
        if component is not None:
            return component
        _raise_if_misconfigured(parsed, appid)
        raise UnknownAppError(appid)

    def problems(self) -> tuple[AppProblem, ...]:
        """The entries of the secret that cannot be used, each with why."""
        return self._parse().problems

    def get(self, appid: str) -> AppConfig:
        """The app; :class:`UnknownAppError` if the secret has no such entry,
        :class:`MisconfiguredAppError` if its entry is not usable, :class:`ConfigError` if it
        is a webhook secret with no entry at all."""
        parsed = self._parse()
        app = parsed.apps.get(appid)
        if app is not None:
            return app
        _raise_if_misconfigured(parsed, appid)
        if not parsed.apps and not parsed.problems and not self.shape.needs_app_secret:
            # The stack creates the webhook secret as "{}": a webhook pointed at it before it
            # was filled (say, right after an upgrade split the secrets) answers 503 rather than
            # 404, so that WeChat retries, the 5xx alarm fires, and this says what to do.
            raise ConfigError(
                f"the webhook secret {self.secret_id!r} holds no apps: put each app's token and "
                "encoding_aes_key in it (stack output PutWebhookSecretCommand; README, Configuration)"
            )
        raise UnknownAppError(appid)

    def _parse(self) -> ParsedApps:
        raw = self._secret_string()
        # Parsed once per distinct secret value: the webhook asks on every request.
        parsed = self._parsed
        if parsed is None or parsed[0] != raw:
            parsed = self._parsed = (raw, parse_apps(raw, self.shape))
        return parsed[1]

    def _secret_string(self) -> str:
        if self._fetch is not None:
            return self._fetch()
        try:
            return self._reader.get()
        except SecretReadError as exc:
            raise ConfigError(
                f"could not read the {self.shape.name} {self.secret_id!r} ({exc.reason}): check "
                "that it exists and the function may call secretsmanager:GetSecretValue on it"
            ) from None
