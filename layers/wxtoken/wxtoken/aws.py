"""The boto3 Session a function's container makes its AWS clients in, and the service models
it reads.

One Session per container for every client (issue 12): botocore's data (endpoints,
partitions, retry rules) is loaded once, and a second Session costs 25–45 ms of a cold start.

**Service models cut to the operations wxtoken calls.** Making a client parses its service's
whole model, which for SSM is 948 KB of JSON (150 operations) and for DynamoDB 556 KB: on a
cold start that is 15 ms for the ``ssm`` client and 8 ms for ``dynamodb`` beyond the
client's fixed cost (a second client in one Session, 3 fresh processes each, 2026-12-06:
SSM 19 ms, DynamoDB 12 ms, Secrets Manager 4 ms), on this machine's full CPU; a function at
256 MB runs its first request on a fraction of a vCPU. botocore reads a model from the first
directory of its data path that has one (``AWS_DATA_PATH``, botocore's ``Loader``), so
:func:`new_session` puts ``botocore_models/`` beside this file first: there each service's
model holds only the operations of :data:`OPERATIONS`, with their shapes as botocore wrote
them and without the documentation. Everything else (endpoint rules, paginators, the
newest API version) still comes from the botocore that runs. Two things follow: a model in
``~/.aws/models`` comes after the cut ones (an ``AWS_DATA_PATH`` still comes first), and
DynamoDB's endpoint discovery (``DescribeEndpoints``, off by default) is not available.

The cut models come from the botocore of the development lock; Lambda's runtime brings its
own, older or newer. A model is data every botocore reads alike as long as its protocol is
one they all speak (``json`` for all three, which the test checks); an operation or shape
trait an older botocore does not know is ignored by it, as in its own newer models.

The cut models are written by ``make botocore-models`` (``devtools/botocore_models.py``)
from the installed botocore; ``tests/unit/test_botocore_models.py`` fails when they differ
from what it would write, when the code calls an operation they lack, or when a service's
protocol is not one every botocore speaks. Clients made outside this Session (a reader's
``boto3.client``) use botocore's own models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MODELS = Path(__file__).resolve().parent / "botocore_models"

OPERATIONS: Mapping[str, tuple[str, ...]] = {
    # store/dynamodb_store.py (the token table, its lease and queue), store/dynamodb_dedup.py
    "dynamodb": ("DeleteItem", "GetItem", "PutItem", "Query", "UpdateItem"),
    # secret_values.py: the apps, webhook, Redis AUTH and egress proxy secrets
    "secretsmanager": ("GetSecretValue",),
    # store/ssm_store.py
    "ssm": ("DeleteParameter", "GetParameter", "PutParameter"),
}
"""The operations each cut model keeps, by botocore's service name."""


def new_session() -> Any:
    """A boto3 Session that reads the cut models of :data:`MODELS` before botocore's own
    (any ``AWS_DATA_PATH`` of the user's still comes first)."""
    import boto3.session
    import botocore.session

    core = botocore.session.get_session()
    # The data loader is made lazily, from this variable, at the first model read.
    user_path = core.get_config_variable("data_path")
    core.set_config_variable("data_path", os.pathsep.join(filter(None, (user_path, str(MODELS)))))
    return boto3.session.Session(botocore_session=core)
