"""template.yaml read the way SAM would deploy it, for the local loop.

What the local loop needs of each ``AWS::Serverless::Function`` — CodeUri, Handler,
Timeout, MemorySize, layers, the environment (Globals merged with the function's own),
its schedules (``ScheduleV2`` / ``Schedule``) and HTTP routes (``HttpApi``) — comes from
the template, with the intrinsics (``!Ref``, ``!If``, ``!Sub``, ``!GetAtt``, conditions, …)
resolved against parameter values and the local names of the stack's resources. Nothing
here knows wxtoken: another SAM template works the same way.

Resolution is for local runs: an ``!GetAtt`` of anything but an ARN (say, a cache's
endpoint) has no local value, gets a placeholder and a warning in :attr:`SamTemplate.warnings`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

FUNCTION_TYPE: Final = "AWS::Serverless::Function"
LAYER_TYPES: Final = frozenset({"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"})
# SAM's defaults when neither the function nor Globals set them.
DEFAULT_TIMEOUT: Final = 3
DEFAULT_MEMORY: Final = 128
ACCOUNT_ID: Final = "123456789012"


class TemplateError(Exception):
    """The template (or a parameter override) cannot be run locally; the message says why."""


# libyaml's loader when PyYAML has it: the template is long, and the pure-Python one is slow.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CloudFormationLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """A SafeLoader that reads CloudFormation short tags as their long form (!Ref → Ref)."""


def _intrinsic(loader: Any, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation/SAM template (no Resources)")
    return document


class _NoValue:
    """``AWS::NoValue``: the property or list item is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS: Final = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """The period of ``rate(N unit)`` in seconds; None for anything else (``cron(...)``)."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return None
    return int(match[1]) * _UNIT_SECONDS[match[2].removesuffix("s")]


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule event of a function (EventBridge Scheduler or an EventBridge rule)."""

    name: str
    expression: str
    period_seconds: int
    input: str | None

    def payload(self, fired_at: datetime, *, attempt: int = 1) -> Any:
        """The event the schedule delivers, with Scheduler's context attributes filled in.

        Without an Input, EventBridge delivers its "Scheduled Event" envelope.
        """
        stamp = fired_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.input is None:
            return {
                "version": "0",
                "id": f"local-{int(fired_at.timestamp())}",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": ACCOUNT_ID,
                "time": stamp,
                "region": "us-east-1",
                "resources": [],
                "detail": {},
            }
        # https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html
        text = (
            self.input.replace("<aws.scheduler.scheduled-time>", stamp)
            .replace("<aws.scheduler.execution-id>", f"local-{int(fired_at.timestamp())}")
            .replace("<aws.scheduler.attempt-number>", str(attempt))
            .replace("<aws.scheduler.schedule-arn>", f"arn:aws:scheduler:local:schedule/{self.name}")
        )
        return json.loads(text)


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP API route: ``METHOD /path/{param}`` to a function."""

    method: str  # GET, POST, … or ANY
    path: str
    function: str  # logical id
    authorizer: str | None  # "AWS_IAM", a JWT/Lambda authorizer's name, or None

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route serves ``method path``, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        match = _path_pattern(self.path).fullmatch(path)
        return match.groupdict() if match else None


def _path_pattern(template: str) -> re.Pattern[str]:
    # {name} is one segment; {name+} is greedy (API Gateway's proxy parameter).
    parts = []
    for piece in re.split(r"(\{[^}]+\})", template):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            parts.append(f"(?P<{name[:-1]}>.+)" if name.endswith("+") else f"(?P<{name}>[^/]+)")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class Function:
    """An ``AWS::Serverless::Function`` as it would run: code, handler and environment."""

    logical_id: str
    function_name: str
    code_uri: Path
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    layers: tuple[Path, ...]
    environment: dict[str, str]
    schedules: tuple[Schedule, ...] = ()
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True, slots=True)
class LocalResource:
    """A resource the local AWS provides (a secret, a table), with its resolved properties."""

    logical_id: str
    type: str
    physical_id: str
    properties: dict[str, Any]


@dataclass
class SamTemplate:
    """A template resolved for a local stack. Build with :meth:`load`."""

    path: Path
    document: dict[str, Any]
    stack_name: str
    region: str
    parameters: dict[str, Any]
    physical_ids: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    _conditions: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        parameter_overrides: Mapping[str, str] | None = None,
        physical_ids: Mapping[str, str] | None = None,
        stack_name: str = "local",
        region: str = "us-east-1",
    ) -> SamTemplate:
        """Read ``path`` and take parameter values: the overrides, else the defaults.

        ``physical_ids`` names resources locally (logical id → name); the others are named
        ``{stack_name}-{LogicalId}``. Raises :class:`TemplateError` for an unknown
        parameter or one whose value the template does not allow.
        """
        document = load_yaml(path)
        template = cls(path, document, stack_name, region, {}, dict(physical_ids or {}))
        template.parameters = template._parameter_values(dict(parameter_overrides or {}))
        return template

    # --- parameters and conditions

    def _parameter_values(self, overrides: dict[str, str]) -> dict[str, Any]:
        declared: dict[str, Any] = self.document.get("Parameters") or {}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(f"the template has no parameter {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            raw = overrides.get(name, spec.get("Default"))
            if raw is None:
                raise TemplateError(f"parameter {name} has no Default: pass --parameter-overrides {name}=…")
            raw = str(raw).lower() if isinstance(raw, bool) else str(raw)
            allowed = spec.get("AllowedValues")
            if allowed is not None and raw not in [str(v) for v in allowed]:
                raise TemplateError(f"parameter {name}={raw!r} is not one of {', '.join(map(str, allowed))}")
            pattern = spec.get("AllowedPattern")
            if (
                pattern is not None
                and spec.get("Type", "String") == "String"
                and not re.fullmatch(pattern, raw)
            ):
                hint = spec.get("ConstraintDescription") or f"must match {pattern}"
                raise TemplateError(f"parameter {name}={raw!r}: {hint}")
            kind = spec.get("Type", "String")
            values[name] = raw.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else raw
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.document.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def resource_exists(self, logical_id: str) -> bool:
        resource = self.document["Resources"].get(logical_id)
        if resource is None:
            return False
        condition = resource.get("Condition")
        return condition is None or self.condition(condition)

    # --- intrinsic functions

    def resolve(self, node: Any, where: str = "") -> Any:
        """``node`` with every intrinsic function evaluated; ``NO_VALUE`` items dropped."""
        if isinstance(node, list):
            items = [self.resolve(item, where) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self._ref(arg, where)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key[4:], arg, where)
        resolved = {k: self.resolve(v, f"{where}.{k}" if where else k) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, arg: Any, where: str) -> Any:
        match name:
            case "If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(condition) else when_false, where)
            case "Equals":
                left, right = (self.resolve(a, where) for a in arg)
                return str(left) == str(right)
            case "And":
                return all(self.resolve(a, where) for a in arg)
            case "Or":
                return any(self.resolve(a, where) for a in arg)
            case "Not":
                return not self.resolve(arg[0], where)
            case "EachMemberEquals":
                members, value = (self.resolve(a, where) for a in arg)
                return all(str(m) == str(value) for m in members)
            case "Sub":
                return self._sub(arg, where)
            case "Join":
                separator, items = arg
                return str(separator).join(str(i) for i in self.resolve(items, where))
            case "Select":
                index, items = (self.resolve(a, where) for a in arg)
                return items[int(index)]
            case "Split":
                separator, text = (self.resolve(a, where) for a in arg)
                return str(text).split(str(separator))
            case "GetAtt":
                logical_id, attribute = self.resolve(arg, where)
                return self._get_att(logical_id, attribute, where)
            case "FindInMap":
                table, key, attribute = (self.resolve(a, where) for a in arg)
                return self.document["Mappings"][table][key][attribute]
            case "GetAZs":
                return [f"{self.region}a", f"{self.region}b", f"{self.region}c"]
            case "Base64":
                import base64

                return base64.b64encode(str(self.resolve(arg, where)).encode()).decode()
        self.warnings.append(f"{where}: Fn::{name} has no local value; using an empty string")
        return ""

    def _ref(self, name: str, where: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/0",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.document["Resources"]:
            return self.physical_id(name)
        raise TemplateError(f"{where}: !Ref {name} names no parameter or resource")

    def physical_id(self, logical_id: str) -> str:
        """What ``!Ref`` of the resource gives locally (a function's FunctionName if set)."""
        if logical_id in self.physical_ids:
            return self.physical_ids[logical_id]
        resource = self.document["Resources"][logical_id]
        properties = resource.get("Properties") or {}
        for name_property in ("FunctionName", "TableName", "QueueName", "Name", "LayerName"):
            if name_property in properties:
                return str(self.resolve(properties[name_property], logical_id))
        return f"{self.stack_name}-{logical_id}"

    def _get_att(self, logical_id: str, attribute: str, where: str) -> str:
        resource = self.document["Resources"].get(logical_id)
        if resource is None:
            raise TemplateError(f"{where}: !GetAtt {logical_id}.{attribute} names no resource")
        if attribute == "Arn":
            service = resource["Type"].split("::")[1].lower()
            if resource["Type"] == FUNCTION_TYPE:
                return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.physical_id(logical_id)}"
            return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{self.physical_id(logical_id)}"
        self.warnings.append(f"{where}: !GetAtt {logical_id}.{attribute} has no local value")
        return f"local-{logical_id}-{attribute}"

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v, where) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def value(match: re.Match[str]) -> str:
            name = match[1]
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att(logical_id, attribute, where)
            return str(self._ref(name, where))

        return re.sub(r"\$\{([^}]+)\}", value, str(text))

    # --- the model the local loop runs

    def functions(self) -> dict[str, Function]:
        """Every function of the stack (its Condition holding), by logical id."""
        globals_ = (self.document.get("Globals") or {}).get("Function") or {}
        functions: dict[str, Function] = {}
        for logical_id, resource in self.document["Resources"].items():
            if resource.get("Type") != FUNCTION_TYPE or not self.resource_exists(logical_id):
                continue
            functions[logical_id] = self._function_model(
                logical_id, resource.get("Properties") or {}, globals_
            )
        return functions

    def _function_model(self, logical_id: str, props: dict[str, Any], globals_: dict[str, Any]) -> Function:
        def setting(name: str, default: Any) -> Any:
            value = self.resolve(props.get(name, globals_.get(name, default)), f"{logical_id}.{name}")
            return default if value is NO_VALUE else value

        code_uri = setting("CodeUri", None)
        handler = setting("Handler", None)
        if not isinstance(code_uri, str) or not isinstance(handler, str):
            raise TemplateError(
                f"{logical_id}: only a local CodeUri (a directory) and a Handler can run locally"
            )
        return Function(
            logical_id=logical_id,
            function_name=self.physical_id(logical_id),
            code_uri=(self.path.parent / code_uri).resolve(),
            handler=handler,
            runtime=str(setting("Runtime", "")),
            timeout=int(setting("Timeout", DEFAULT_TIMEOUT)),
            memory_size=int(setting("MemorySize", DEFAULT_MEMORY)),
            # SAM appends the function's layers to the Globals' ones.
            layers=self._layers([*(globals_.get("Layers") or []), *(props.get("Layers") or [])], logical_id),
            environment=self._environment(logical_id, props, globals_),
            schedules=self._schedules(logical_id, props),
            routes=self._routes(logical_id, props),
        )

    def _environment(
        self, logical_id: str, props: dict[str, Any], globals_: dict[str, Any]
    ) -> dict[str, str]:
        """Globals' variables, overridden by the function's own (SAM merges the maps)."""
        merged: dict[str, str] = {}
        for source in (globals_, props):
            environment = self.resolve(source.get("Environment") or {}, f"{logical_id}.Environment")
            for name, value in ((environment or {}).get("Variables") or {}).items():
                if isinstance(value, bool):
                    merged[name] = "true" if value else "false"
                elif isinstance(value, list):
                    merged[name] = ",".join(str(v) for v in value)
                else:
                    merged[name] = str(value)
        return merged

    def _layers(self, layers: list[Any], logical_id: str) -> tuple[Path, ...]:
        directories: list[Path] = []
        for layer in layers:
            name = layer.get("Ref") if isinstance(layer, dict) else None
            resource = self.document["Resources"].get(name) if name else None
            if resource is None or resource.get("Type") not in LAYER_TYPES:
                self.warnings.append(f"{logical_id}: layer {layer!r} is not in this template; not loaded")
                continue
            props = resource.get("Properties") or {}
            content = props.get("ContentUri") or props.get("Content")
            if not isinstance(content, str):
                self.warnings.append(f"{logical_id}: layer {name} has no local ContentUri; not loaded")
                continue
            # sam build puts a python layer's ContentUri under python/, which Lambda puts on sys.path.
            directories.append((self.path.parent / content).resolve())
        return tuple(directories)

    def _schedules(self, logical_id: str, props: dict[str, Any]) -> tuple[Schedule, ...]:
        schedules = []
        for name, event in (props.get("Events") or {}).items():
            kind = event.get("Type")
            if kind not in ("ScheduleV2", "Schedule"):
                continue
            where = f"{logical_id}.Events.{name}"
            spec = self.resolve(event.get("Properties") or {}, where)
            enabled = spec.get("State", "ENABLED") != "DISABLED" and spec.get("Enabled", True) is not False
            expression = spec.get("ScheduleExpression" if kind == "ScheduleV2" else "Schedule", "")
            period = rate_seconds(expression)
            if period is None:
                self.warnings.append(f"{where}: {expression} is not a rate(); the local loop does not run it")
                continue
            if enabled:
                schedules.append(Schedule(name, expression, period, spec.get("Input")))
        return tuple(schedules)

    def _routes(self, logical_id: str, props: dict[str, Any]) -> tuple[Route, ...]:
        routes = []
        for name, event in (props.get("Events") or {}).items():
            kind = event.get("Type")
            if kind == "Api":
                self.warnings.append(
                    f"{logical_id}.Events.{name}: REST API (Api) events are not served locally"
                )
            if kind != "HttpApi":
                continue
            spec = event.get("Properties") or {}
            if "Path" not in spec:  # the API's $default route
                routes.append(Route("ANY", "/{proxy+}", logical_id, None))
                continue
            authorizer = (spec.get("Auth") or {}).get("Authorizer") or self._default_authorizer(
                spec.get("ApiId")
            )
            routes.append(
                Route(
                    method=str(spec.get("Method", "ANY"))
                    .upper()
                    .replace("X-AMAZON-APIGATEWAY-ANY-METHOD", "ANY"),
                    path=str(spec["Path"]),
                    function=logical_id,
                    authorizer=None if authorizer in (None, "NONE") else str(authorizer),
                )
            )
        return tuple(routes)

    def _default_authorizer(self, api: Any) -> str | None:
        name = api.get("Ref") if isinstance(api, dict) else None
        props = (self.document["Resources"].get(name) or {}).get("Properties") or {} if name else {}
        default = (props.get("Auth") or {}).get("DefaultAuthorizer")
        return str(default) if default else None

    def resources_of_type(self, *types: str) -> list[LocalResource]:
        """The stack's resources of these types whose Condition holds, properties resolved."""
        found = []
        for logical_id, resource in self.document["Resources"].items():
            if resource.get("Type") in types and self.resource_exists(logical_id):
                properties = self.resolve(resource.get("Properties") or {}, logical_id)
                found.append(
                    LocalResource(logical_id, resource["Type"], self.physical_id(logical_id), properties)
                )
        return found
