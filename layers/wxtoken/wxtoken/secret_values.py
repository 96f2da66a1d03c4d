"""One way to read a small Secrets Manager value (the Redis AUTH secret, the egress proxy).

Read with the timeouts of :data:`wxtoken.budget.SECRET`, not powertools' ``get_secret``
(whose default provider has boto3's 60 s timeouts): the webhook may read one on a cold start,
and a dead Secrets Manager must fail within WeChat's 5 s. Errors name the secret's purpose
and AWS's error code, never the value.
"""

from __future__ import annotations

from wxtoken.budget import SECRET
from wxtoken.errors import WxTokenError


def read_secret_string(secret_id: str, *, max_age: int, what: str, error: type[WxTokenError]) -> str:
    """The secret's SecretString; ``error("could not read the <what> (<AWS code>)")`` if not.

    A provider per call: this runs once per client built, and the value stays out of
    module state.
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        provider = SecretsProvider(boto_config=SECRET.botocore_config())
        raw = provider.get(secret_id, max_age=max_age)
    except GetParameterError as exc:
        # powertools raises GetParameterError inside its except: the AWS error is the context.
        cause = exc.__cause__ or exc.__context__
        response = getattr(cause, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        reason = code or type(cause or exc).__name__
        raise error(f"could not read the {what} ({reason})") from None
    return raw.decode() if isinstance(raw, bytes) else str(raw)
