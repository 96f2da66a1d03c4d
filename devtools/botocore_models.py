"""Write the service models cut to wxtoken's operations (``wxtoken/botocore_models/``).

    python -m devtools.botocore_models           # write them from the installed botocore
    python -m devtools.botocore_models --check   # exit 1 if what is there differs

Why the functions read cut models, and how: :mod:`wxtoken.aws`. A cut model is botocore's
``service-2`` of the service's newest API version with only the operations of
:data:`wxtoken.aws.OPERATIONS` and the shapes they reach (input, output, errors, and every
member of those), word for word, less the ``documentation`` strings: botocore reads them for
``help()`` only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wxtoken.aws import MODELS, OPERATIONS


def cut_model(full: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    """``full`` with only ``operations`` and the shapes they reach, every other top-level key
    kept (say, ``clientContextParams``, which endpoint rules read), less the documentation."""
    missing = [name for name in operations if name not in full["operations"]]
    if missing:
        raise SystemExit(f"{full['metadata']['serviceId']} has no operation {', '.join(missing)}")
    kept_operations = {name: _undocumented(full["operations"][name]) for name in sorted(operations)}
    shapes: dict[str, Any] = {}
    pending = [ref for operation in kept_operations.values() for ref in _operation_shapes(operation)]
    while pending:
        name = pending.pop()
        if name in shapes:
            continue
        shape = shapes[name] = _undocumented_shape(full["shapes"][name])
        pending.extend(_member_shapes(shape))
    rest = {key: value for key, value in full.items() if key not in {"documentation", "operations", "shapes"}}
    return {**rest, "operations": kept_operations, "shapes": dict(sorted(shapes.items()))}


def _undocumented(value: dict[str, Any]) -> dict[str, Any]:
    """An operation, shape or member without its own ``documentation`` string."""
    return {key: item for key, item in value.items() if key != "documentation"}


def _undocumented_shape(shape: dict[str, Any]) -> dict[str, Any]:
    cut = _undocumented(shape)
    if "members" in cut:  # a member may be named "documentation": only their docs go
        cut["members"] = {name: _undocumented(member) for name, member in cut["members"].items()}
    for key in ("member", "key", "value"):  # list and map shapes
        if key in cut:
            cut[key] = _undocumented(cut[key])
    return cut


def _operation_shapes(operation: dict[str, Any]) -> Iterator[str]:
    for key in ("input", "output"):
        if key in operation:
            yield operation[key]["shape"]
    for error in operation.get("errors", []):
        yield error["shape"]


def _member_shapes(shape: dict[str, Any]) -> Iterator[str]:
    for member in shape.get("members", {}).values():
        yield member["shape"]
    for key in ("member", "key", "value"):  # list and map shapes
        if key in shape:
            yield shape[key]["shape"]


def cut_models() -> dict[Path, str]:
    """Each cut model's path under :data:`MODELS` and its text, from the installed botocore."""
    import botocore.loaders

    loader = botocore.loaders.Loader()
    texts: dict[Path, str] = {}
    for service, operations in sorted(OPERATIONS.items()):
        version = loader.determine_latest_version(service, "service-2")
        full = loader.load_service_model(service, "service-2", version)
        text = json.dumps(cut_model(full, operations), indent=1, ensure_ascii=False) + "\n"
        texts[Path(service) / version / "service-2.json"] = text
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the models differ; write nothing")
    args = parser.parse_args()
    wanted = cut_models()
    present = {path.relative_to(MODELS) for path in MODELS.rglob("*.json")} if MODELS.exists() else set()
    stale = sorted(str(path) for path in present - wanted.keys())
    changed = sorted(
        str(path)
        for path, text in wanted.items()
        if not (MODELS / path).exists() or (MODELS / path).read_text() != text
    )
    if args.check:
        if stale or changed:
            out_of_date = ", ".join(stale + changed)
            print(f"cut models out of date (make botocore-models): {out_of_date}", file=sys.stderr)
            raise SystemExit(1)
        return
    for path in stale:
        (MODELS / path).unlink()
    for relative, text in wanted.items():
        (MODELS / relative).parent.mkdir(parents=True, exist_ok=True)
        (MODELS / relative).write_text(text)
    print(f"wrote {len(wanted)} cut models to {MODELS}")


if __name__ == "__main__":
    main()
