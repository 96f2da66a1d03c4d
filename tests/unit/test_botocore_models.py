"""The service models cut to wxtoken's operations (wxtoken.aws): up to date with the installed
botocore, complete for every operation the code calls, and read by the functions' Session."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import boto3
import botocore
import botocore.loaders
import pytest
from botocore import xform_name

from devtools.botocore_models import cut_model, cut_models
from wxtoken.aws import MODELS, OPERATIONS, new_session

LAYER = Path(__file__).resolve().parents[2] / "layers" / "wxtoken" / "wxtoken"
# Protocols every botocore of the last years speaks: Lambda's runtime brings its own botocore,
# which may be older than the one the models were cut from.
OLD_PROTOCOLS = {"json"}


def _full_model(service: str) -> dict:
    loader = botocore.loaders.Loader()
    return loader.load_service_model(service, "service-2")


def test_the_cut_models_are_what_the_installed_botocore_gives() -> None:
    wanted = cut_models()
    present = {path.relative_to(MODELS) for path in MODELS.rglob("*.json")}
    assert present == set(wanted), "run make botocore-models"
    for path, text in wanted.items():
        assert (MODELS / path).read_text() == text, f"{path}: run make botocore-models"


def test_every_operation_the_code_calls_is_in_its_cut_model() -> None:
    """Any attribute of the layer's code named like an operation of a cut service (say
    ``.get_parameter``) must be kept in that service's model, or the client would lack it."""
    methods: dict[str, set[str]] = {}
    for service in OPERATIONS:
        for operation in _full_model(service)["operations"]:
            methods.setdefault(xform_name(operation), set()).add(service)
    called: set[tuple[str, str]] = set()
    for source in LAYER.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in methods:
                called.update((service, node.attr) for service in methods[node.attr])
    kept = {(service, xform_name(operation)) for service, ops in OPERATIONS.items() for operation in ops}
    assert called, "the scan found no call at all: it no longer sees the code"
    # get_item, put_item … are DynamoDB's; a name shared with another cut service would show here.
    assert called <= kept, sorted(called - kept)


@pytest.mark.parametrize("service", sorted(OPERATIONS))
def test_a_cut_model_keeps_the_full_models_metadata_and_operations(service: str) -> None:
    full = _full_model(service)
    cut = json.loads(next((MODELS / service).glob("*/service-2.json")).read_text())
    assert cut["metadata"] == full["metadata"]
    assert cut["metadata"]["protocol"] in OLD_PROTOCOLS
    for name in OPERATIONS[service]:
        kept = cut["operations"][name]
        documented = full["operations"][name]
        assert {key: value for key, value in documented.items() if key != "documentation"} == kept
    # Every shape an operation reaches is there (botocore resolves them lazily, at a call).
    model = botocore.model.ServiceModel(cut, service_name=service)
    for name in OPERATIONS[service]:
        operation = model.operation_model(name)
        for shape in (operation.input_shape, operation.output_shape, *operation.error_shapes):
            if shape is not None:
                _walk(shape)


def _walk(shape: botocore.model.Shape, seen: set[str] | None = None) -> None:
    seen = set() if seen is None else seen
    if shape.name in seen:
        return
    seen.add(shape.name)
    for member in getattr(shape, "members", {}).values():
        _walk(member, seen)
    for attribute in ("member", "key", "value"):
        child = getattr(shape, attribute, None)
        if isinstance(child, botocore.model.Shape):
            _walk(child, seen)


def test_cutting_keeps_reached_shapes_only() -> None:
    full = {
        "version": "2.0",
        "metadata": {"protocol": "json"},
        "clientContextParams": {"P": {"type": "string"}},
        "documentation": "the service",
        "operations": {
            "Kept": {
                "name": "Kept",
                "input": {"shape": "In"},
                "errors": [{"shape": "Oops"}],
                "documentation": "d",
            },
            "Dropped": {"name": "Dropped", "input": {"shape": "Other"}},
        },
        "shapes": {
            "In": {
                "type": "structure",
                "members": {"L": {"shape": "List", "documentation": "d"}, "documentation": {"shape": "S"}},
                "documentation": "d",
            },
            "List": {"type": "list", "member": {"shape": "Map"}},
            "Map": {"type": "map", "key": {"shape": "S"}, "value": {"shape": "S"}},
            "S": {"type": "string"},
            "Oops": {"type": "structure", "members": {}, "exception": True},
            "Other": {"type": "structure", "members": {}},
        },
    }
    cut = cut_model(full, ("Kept",))
    assert list(cut["operations"]) == ["Kept"]
    assert "documentation" not in cut["operations"]["Kept"]
    assert set(cut["shapes"]) == {"In", "List", "Map", "S", "Oops"}
    assert cut["shapes"]["In"] == {
        "type": "structure",
        "members": {"L": {"shape": "List"}, "documentation": {"shape": "S"}},  # a member of that name stays
    }
    assert cut["clientContextParams"] == {"P": {"type": "string"}}  # endpoint rules may read it
    assert "documentation" not in cut


def test_the_functions_session_reads_the_cut_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    ssm = new_session().client("ssm")
    assert sorted(ssm.meta.service_model.operation_names) == sorted(OPERATIONS["ssm"])
    assert hasattr(ssm, "get_parameter")
    assert not hasattr(ssm, "send_command")
    # A client outside it keeps botocore's whole model.
    assert "SendCommand" in boto3.session.Session().client("ssm").meta.service_model.operation_names


def test_a_users_data_path_still_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    version = next((MODELS / "ssm").iterdir()).name
    mine = json.loads((MODELS / "ssm" / version / "service-2.json").read_text())
    del mine["operations"]["DeleteParameter"]
    (tmp_path / "ssm" / version).mkdir(parents=True)
    (tmp_path / "ssm" / version / "service-2.json").write_text(json.dumps(mine))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    assert "DeleteParameter" not in new_session().client("ssm").meta.service_model.operation_names
