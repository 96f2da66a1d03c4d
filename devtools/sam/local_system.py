"""The stack of template.yaml on this machine: a local AWS, WeChat, and the functions.

Shared by ``make local`` (:mod:`devtools.local`) and the docker-free ``sam local invoke``
(:mod:`devtools.invoke`). What runs comes from the template (:mod:`devtools.sam.template`);
what stands in for AWS and WeChat is chosen here:

- **AWS**: moto in server mode (Secrets Manager, SSM, DynamoDB) on ``--aws-port``; the
  template's secrets and DynamoDB tables are created in it, the apps secret holding the app.
- **Lambda**: each function in a process of its own with its own environment
  (:class:`devtools.sam.host.FunctionContainer`), and Lambda's Invoke API for boto3.
- **WeChat**: the real API when ``WECHAT_APPID`` and ``WECHAT_APPSECRET`` are set, else the
  stand-in (SANDBOX — not WeChat) with a sample app.
- **Token store**: the template's ``TokenStore`` — ``ssm`` (in moto) unless
  ``TOKEN_STORE=redis``, then the Redis at ``REDIS_URL`` (default: the local 6379, started
  with ``redis-server`` if nothing answers there).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from devtools.sam.host import Console, FunctionContainer, Invocation, LambdaApiServer
from devtools.sam.template import Function, SamTemplate, load_yaml
from devtools.wechat.samples import AES_KEY as SAMPLE_AES_KEY
from devtools.wechat.samples import APPID as SAMPLE_APPID
from devtools.wechat.samples import TOKEN as SAMPLE_TOKEN

ROOT: Final = Path(__file__).resolve().parents[2]
TEMPLATE: Final = ROOT / "template.yaml"
DEFAULT_STATE_FILE: Final = ROOT / ".wxtoken-local.json"
STACK_NAME: Final = "wxtoken-local"
REGION: Final = "us-east-1"
# Resources the template leaves for CloudFormation to name get these local names: the apps
# secret is the one events/env.json (sam local invoke) and the tests name; the webhook secret
# is the one the template gives the webhook when the stack creates both.
LOCAL_PHYSICAL_IDS: Final = {"AppsSecret": "wxtoken/apps", "WebhookSecret": "wxtoken/webhook"}
SAMPLE_APP_SECRET: Final = "sandbox0appsecret0not0a0real0one"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
# Off 3000 and 3001, sam local start-api's and start-lambda's defaults: sam in Docker runs
# beside make local, whose AWS (4566, LocalStack's port) and stand-in events/env.json names.
DEFAULT_PORTS: Final = {"api": 3100, "lambda": 3101, "aws": 4566, "wechat": 8081}
PORT_NAMES: Final = {
    "api": ("the HTTP API", "--port"),
    "lambda": ("Lambda's Invoke API", "--lambda-port"),
    "aws": ("the local AWS (moto)", "--aws-port"),
    "wechat": ("the WeChat stand-in", "--wechat-port"),
}
LOOPBACK: Final = ("127.0.0.1", "localhost", "::1")
FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}


class LocalError(Exception):
    """The local stack cannot start; the message says what to do."""


@dataclass(frozen=True, slots=True)
class WeChatApp:
    """The one app the local stack serves."""

    appid: str
    app_secret: str = field(repr=False)
    token: str
    encoding_aes_key: str

    def apps_secret(self) -> str:
        """The apps secret's JSON (README, Configuration: the apps secret)."""
        return json.dumps(
            {
                self.appid: {
                    "app_secret": self.app_secret,
                    "token": self.token,
                    "encoding_aes_key": self.encoding_aes_key,
                    "jsapi_ticket": True,
                }
            }
        )

    def webhook_secret(self) -> str:
        """The webhook secret's JSON: the same app, without its AppSecret."""
        return json.dumps({self.appid: {"token": self.token, "encoding_aes_key": self.encoding_aes_key}})


SAMPLE_APP: Final = WeChatApp(SAMPLE_APPID, SAMPLE_APP_SECRET, SAMPLE_TOKEN, SAMPLE_AES_KEY)


@dataclass
class LocalOptions:
    template: Path = TEMPLATE
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    aws_port: int = DEFAULT_PORTS["aws"]
    lambda_port: int = DEFAULT_PORTS["lambda"]
    wechat_port: int = DEFAULT_PORTS["wechat"]
    # Where the local services listen; 0.0.0.0 lets containers (sam local in Docker) reach them.
    host: str = "127.0.0.1"
    token_store: str = "ssm"
    redis_url: str | None = None
    real_app: WeChatApp | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> LocalOptions:
        """Options from the user's environment: TOKEN_STORE, REDIS_URL, WECHAT_APPID, …

        Raises :class:`LocalError` for half-given WeChat credentials.
        """
        env = os.environ if environ is None else environ
        appid, secret = env.get("WECHAT_APPID", "").strip(), env.get("WECHAT_APPSECRET", "").strip()
        if bool(appid) != bool(secret):
            raise LocalError(
                "set both WECHAT_APPID and WECHAT_APPSECRET to use the real WeChat API, or neither"
            )
        real = None
        if appid:
            real = WeChatApp(
                appid,
                secret,
                env.get("WECHAT_TOKEN", "").strip() or SAMPLE_TOKEN,
                env.get("WECHAT_ENCODING_AES_KEY", "").strip() or SAMPLE_AES_KEY,
            )
        return cls(
            token_store=env.get("TOKEN_STORE", "").strip().lower() or "ssm",
            redis_url=env.get("REDIS_URL", "").strip() or None,
            real_app=real,
            **kwargs,
        )


def isolate_from_real_aws(environ: MutableMapping[str, str] | None = None) -> None:
    """Drop the user's AWS settings from this process's environment (default: ``os.environ``).

    This process hosts the local AWS: moto, in it, builds boto3 sessions of its own, which
    would fail on an ``AWS_PROFILE`` that names a profile, or read ``~/.aws``. What is left
    cannot reach a real account: fake keys, no config files, no metadata service.
    """
    env = os.environ if environ is None else environ
    for name in [name for name in env if name.startswith("AWS_")]:
        del env[name]
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )


def lambda_environment(function: Function, *, aws_endpoint: str, lambda_endpoint: str) -> dict[str, str]:
    """What the function's process gets under make local: the template's variables, Lambda's
    own, and the local AWS. Nothing of the caller's environment except PATH reaches it."""
    return {
        **function.environment,
        **container_environment(function),
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_ENDPOINT_URL_LAMBDA": lambda_endpoint,
    }


def container_environment(function: Function) -> dict[str, str]:
    """What any local run of the function gets whatever its template says: Lambda's reserved
    variables, fake keys, and no way to a real account (no ~/.aws files, no metadata service).
    make local adds its endpoints to it; ``devtools.invoke --sam-env`` only what sam adds."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime or 'python'}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "LAMBDA_TASK_ROOT": str(function.code_uri),
        "_HANDLER": function.handler,
        "TZ": "UTC",
        "PATH": os.environ.get("PATH", os.defpath),
        **FAKE_CREDENTIALS,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _preferring[T](start: Callable[[int], T], port: int) -> T:
    """``start(port)``, or ``start(0)`` (a free port) when ``port`` is taken."""
    try:
        return start(port)
    except OSError:
        if port == 0:
            raise
        return start(0)


def ports_in_use(host: str, ports: Mapping[str, int]) -> list[str]:
    """Which of ``ports`` (by :data:`PORT_NAMES` key; 0 = any free one) cannot be listened on
    at ``host``, each as "PORT (what, --flag)"."""
    taken = []
    for name, port in ports.items():
        if port == 0:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            # as http.server and moto bind: a port in TIME_WAIT is free, a listening one is not
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                what, flag = PORT_NAMES[name]
                taken.append(f"{port} ({what}, {flag})")
    return taken


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    split = urlsplit(url)
    try:
        with socket.create_connection((split.hostname or "127.0.0.1", split.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def redacted_url(url: str) -> str:
    split = urlsplit(url)
    if split.password:
        return url.replace(f":{split.password}@", ":***@")
    return url


def create_table_params(name: str, props: dict[str, Any]) -> dict[str, Any]:
    """``CreateTable``'s parameters for an ``AWS::DynamoDB::Table`` of the template: its keys,
    billing and global secondary indexes (TokenTable's Open Platform queues)."""
    create: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        create["ProvisionedThroughput"] = {k: int(v) for k, v in props["ProvisionedThroughput"].items()}
    if "GlobalSecondaryIndexes" in props:
        create["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return create


class LocalSystem:
    """Start with :meth:`start`, stop with :meth:`stop` (which undoes whatever started)."""

    def __init__(self, options: LocalOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.app = options.real_app or SAMPLE_APP
        self.sandbox = options.real_app is None
        self.wechat_base = ""
        self.aws_endpoint = ""
        self.lambda_endpoint = ""
        self.redis_url: str | None = None
        self.template: SamTemplate | None = None
        self.functions: dict[str, Function] = {}
        self.containers: dict[str, FunctionContainer] = {}
        self.standin: Any = None
        self.processes: dict[str, int] = {}
        self._cleanups: list[Callable[[], None]] = []
        self._declared_parameters: set[str] | None = None

    # --- lifecycle

    def start(self, *, warm: bool = True, check: Callable[[], None] = lambda: None) -> None:
        """Bring everything up; ``warm`` also cold-starts every function now.

        ``check`` runs between steps (to abort a start-up that was asked to stop). A taken
        port is replaced by a free one. Raises :class:`LocalError` with what to do.
        """
        if self.options.token_store not in ("ssm", "redis"):
            raise LocalError(f"TOKEN_STORE={self.options.token_store!r}: use ssm (the default) or redis")
        isolate_from_real_aws()
        aws = self._spawn_aws()
        self._start_wechat()
        check()
        if self.options.token_store == "redis":
            self._start_redis()
            check()
        self._start_lambda_api()
        self._await_aws(aws)
        check()
        self._resolve_template()
        self._seed_aws()
        check()
        self._create_containers(warm)

    def stop(self) -> None:
        """Stop everything that started, last first. Safe to call more than once."""
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception as exc:  # keep stopping the rest
                self.console.say("local", f"while stopping: {type(exc).__name__}: {exc}")

    def _start_wechat(self) -> None:
        if not self.sandbox:
            parameters = SamTemplate.load(self.options.template).parameters
            default = str(parameters.get("WeChatApiBase", "https://api.weixin.qq.com"))
            self.wechat_base = self.options.parameter_overrides.get("WeChatApiBase", default)
            return
        from devtools.wechat.standin import WeChatStandIn

        def start(port: int) -> WeChatStandIn:
            standin = WeChatStandIn(
                host=self.options.host,
                port=port,
                log=lambda line: self.console.say("WeChat SANDBOX", _masked(line)),
            )
            standin.add_app(self.app.appid, self.app.app_secret)
            return standin.start()

        self.standin = _preferring(start, self.options.wechat_port)
        self._cleanups.append(self.standin.stop)
        self.wechat_base = self.standin.base_url

    def _start_redis(self) -> None:
        import redis

        url = self.options.redis_url or DEFAULT_REDIS_URL

        def ping() -> bool:
            try:
                with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1) as client:
                    return bool(client.ping())
            except redis.RedisError:
                return False

        self.redis_url = url
        if ping():
            return
        split = urlsplit(url)
        if (
            split.hostname not in LOOPBACK
            or split.scheme != "redis"
            or split.username not in (None, "", "default")
        ):
            # Not ours to start: another machine, TLS, or an ACL user.
            raise LocalError(f"TOKEN_STORE=redis: nothing answers at REDIS_URL={redacted_url(url)}")
        binary = shutil.which("redis-server")
        if binary is None:
            raise LocalError(
                f"TOKEN_STORE=redis: no Redis at {url} and no redis-server on PATH: install it "
                "(apt-get install redis-server, brew install redis) or set REDIS_URL"
            )
        directory = Path(tempfile.mkdtemp(prefix="wxtoken-local-redis-"))
        self._cleanups.append(lambda: shutil.rmtree(directory, ignore_errors=True))
        config = directory / "redis.conf"
        # A config file: `save ""` needs quoting that argv cannot give. Redis refuses other
        # hosts without a password (protected mode) unless told to: --host 0.0.0.0 means to.
        settings = [f"bind {self.options.host}", f"port {split.port or 6379}", f'dir "{directory}"']
        settings += ['save ""', "appendonly no"]
        if split.password:
            settings.append(f"requirepass {split.password}")
        elif self.options.host not in LOOPBACK:
            settings.append("protected-mode no")
        config.write_text("\n".join(settings) + "\n")
        config.chmod(0o600)
        process = subprocess.Popen(  # noqa: S603 (redis-server from PATH, our config)
            [binary, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._cleanups.append(lambda: _end(process))
        self.processes["redis-server"] = process.pid
        deadline = time.monotonic() + 10
        while not ping():
            if process.poll() is not None or time.monotonic() > deadline:
                raise LocalError(f"redis-server did not start on port {split.port or 6379}")
            time.sleep(0.05)
        self.console.say("local", f"started redis-server on {redacted_url(url)} (stops with make local)")

    def _spawn_aws(self) -> subprocess.Popen[str]:
        """moto in a process of its own (as in the tests): its CPU-bound work and its start-up
        imports run beside this process's servers rather than under their GIL."""
        process = subprocess.Popen(  # noqa: S603 (this interpreter, our module)
            [
                *(sys.executable, "-m", "devtools.sam.moto_server"),
                *("--host", self.options.host, "--port", str(self.options.aws_port)),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

        def stop() -> None:
            _end(process)  # it holds nothing worth a graceful stop
            assert process.stdin is not None
            with contextlib.suppress(OSError):
                process.stdin.close()

        self._cleanups.append(stop)
        self.processes["local-aws"] = process.pid
        return process

    def _await_aws(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        assert process.stderr is not None
        line = process.stdout.readline().strip()
        if not line.isdigit():
            raise LocalError(f"the local AWS (moto) did not start:\n{process.stderr.read()}")
        stderr = process.stderr

        def forward() -> None:  # moto's own errors (a 500 it answers) are worth seeing
            for text in stderr:
                self.console.say("local AWS", text.rstrip("\n"))

        threading.Thread(target=forward, name="local-aws-log", daemon=True).start()
        self.aws_endpoint = f"http://127.0.0.1:{line}"

    def _start_lambda_api(self) -> None:
        def start(port: int) -> LambdaApiServer:
            return LambdaApiServer(self.container, self.console, host=self.options.host, port=port)

        server = _preferring(start, self.options.lambda_port).start()
        self._cleanups.append(server.stop)
        self.lambda_endpoint = server.url

    def _resolve_template(self) -> None:
        self.template = SamTemplate.load(
            self.options.template,
            parameter_overrides=self.parameter_overrides(),
            physical_ids=LOCAL_PHYSICAL_IDS,
            stack_name=STACK_NAME,
            region=REGION,
        )
        self.functions = self.template.functions()
        for warning in self.template.warnings:
            self.console.say("template", f"warning: {warning}")

    def parameter_overrides(self) -> dict[str, str]:
        """The template parameters of the local stack; the user's --parameter-overrides win.

        Only parameters the template declares are set: another template runs too.
        """
        parameters = {"TokenStore": self.options.token_store}
        if self.redis_url:
            parameters["RedisUrl"] = self.redis_url
        if self.sandbox:
            parameters["WeChatApiBase"] = self.wechat_base
        if self._declared_parameters is None:
            self._declared_parameters = set(load_yaml(self.options.template).get("Parameters") or {})
        declared = self._declared_parameters
        chosen = {name: value for name, value in parameters.items() if name in declared}
        return {**chosen, **self.options.parameter_overrides}

    def _seed_aws(self) -> None:
        """Create the template's secrets and tables in the local AWS; the apps go in the
        secret the functions name in WECHAT_APPS_SECRET_ID, their webhook keys (no AppSecret)
        in the one the webhook names in WECHAT_WEBHOOK_SECRET_ID."""
        assert self.template is not None
        secrets = self.client("secretsmanager")
        for secret in self.template.resources_of_type("AWS::SecretsManager::Secret"):
            secrets.create_secret(
                Name=secret.physical_id, SecretString=secret.properties.get("SecretString", "{}")
            )
        for variable, value in (
            ("WECHAT_APPS_SECRET_ID", self.app.apps_secret()),
            ("WECHAT_WEBHOOK_SECRET_ID", self.app.webhook_secret()),
        ):
            named = {f.environment.get(variable) for f in self.functions.values()} - {None, ""}
            for secret_id in named:
                try:
                    secrets.put_secret_value(SecretId=secret_id, SecretString=value)
                except secrets.exceptions.ResourceNotFoundException:
                    secrets.create_secret(Name=secret_id, SecretString=value)
        dynamodb = self.client("dynamodb")
        for table in self.template.resources_of_type("AWS::DynamoDB::Table"):
            props = table.properties
            dynamodb.create_table(**create_table_params(table.physical_id, props))
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=table.physical_id,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )

    def client(self, service: str) -> Any:
        """A boto3 client on the local AWS (fake credentials; never a real account)."""
        import boto3

        session = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )
        return session.client(service, endpoint_url=self.aws_endpoint)

    def _create_containers(self, warm: bool) -> None:
        for logical_id, function in self.functions.items():
            environment = self.environment(function)
            container = FunctionContainer(function, environment, self.console)
            self.containers[logical_id] = container
            self._cleanups.append(container.stop)
        if not warm:
            return
        # Cold-start them side by side: each imports its code (and boto3, powertools) once.
        # Meanwhile moto loads SSM, whose first request costs it ~2 s (it imports moto.ec2).
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(len(self.containers) + 1) as pool:
            inits = {name: pool.submit(c.start) for name, c in self.containers.items()}
            pool.submit(self.client("ssm").describe_parameters, MaxResults=1)
        for name, init in inits.items():
            exception = init.exception()
            if exception is not None:
                raise LocalError(f"{name} failed its cold start: {exception}")
            self.console.say("local", f"{name} is warm (cold start {init.result():.0f} ms)")
            pid = self.containers[name].pid
            if pid is not None:
                self.processes[name] = pid

    def environment(self, function: Function) -> dict[str, str]:
        return lambda_environment(
            function, aws_endpoint=self.aws_endpoint, lambda_endpoint=self.lambda_endpoint
        )

    # --- using it

    def container(self, name: str) -> FunctionContainer | None:
        """The function's container by logical id or function name."""
        if name in self.containers:
            return self.containers[name]
        return next((c for c in self.containers.values() if c.function.function_name == name), None)

    def invoke(self, name: str, event: Any) -> Invocation:
        container = self.container(name)
        if container is None:
            raise LocalError(f"no function {name} in {self.options.template.name}")
        return container.invoke(event)

    def state(self, **extra: Any) -> dict[str, Any]:
        """What other tools (devtools.invoke, devtools.play) need to use this stack."""
        assert self.template is not None
        return {
            "pid": os.getpid(),
            "template": str(self.options.template),
            "stack_name": STACK_NAME,
            "region": REGION,
            "parameters": self.parameter_overrides(),
            "physical_ids": LOCAL_PHYSICAL_IDS,
            "aws_endpoint": self.aws_endpoint,
            "lambda_endpoint": self.lambda_endpoint,
            "token_store": self.options.token_store,
            "redis_url": self.redis_url,
            "wechat": {
                "sandbox": self.sandbox,
                "api_base": self.wechat_base,
                "appid": self.app.appid,
                "token": self.app.token,
                "encoding_aes_key": self.app.encoding_aes_key,
            },
            "processes": dict(self.processes),
            **extra,
        }


_TOKEN_IN_URL: Final = re.compile(r"(access_token=)[^&\s]+")


def _masked(line: str) -> str:
    """A stand-in log line without the access tokens in its URLs (tokens are never logged)."""
    return _TOKEN_IN_URL.sub(r"\1***", line)


def _end(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically, readable by this user only (it names the app's Token and AES key)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(state, out, indent=2)
    os.replace(temporary, path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The state of a running ``make local``, or None (no file, or its process is gone)."""
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError):
        return None
    except PermissionError:  # alive, as another user
        pass
    if not answers(state.get("aws_endpoint", "")):
        return None
    return state


def remove_state(path: Path) -> None:
    """Remove the state file if it is this process's."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(path.read_text(encoding="utf-8"))["pid"] == os.getpid():
            path.unlink()


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """sam's --parameter-overrides: ``"Key=Value Key2=Value2"`` or
    ``ParameterKey=Key,ParameterValue=Value``. Raises LocalError for another shape."""
    overrides = {}
    for item in (word for text in items for word in text.split()):
        if item.startswith("ParameterKey="):
            fields = dict(part.partition("=")[::2] for part in item.split(",", 1))
            if "ParameterValue" in fields:
                overrides[fields["ParameterKey"]] = fields["ParameterValue"]
                continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LocalError(f"--parameter-overrides wants Key=Value, got {item!r}")
        overrides[key] = value
    return overrides
