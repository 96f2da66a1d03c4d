"""How a reader asks the writer to replace a token WeChat rejected.

The reader side only: :class:`LambdaRefreshRequester` invokes the refresh function. The
in-process alternative (:mod:`wxtoken.refresh.in_process`) belongs to the writer and is
loaded only when a reader is configured to refresh itself.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

from wxtoken.budget import READER_REFRESH_INVOKE, CallBudget
from wxtoken.errors import ConfigError, RefreshRequestError


class RefreshRequester(Protocol):
    """Asks the refresh function to replace a token WeChat rejected."""

    def compare_and_refresh(self, appid: str, invalid_token: str) -> None:
        """Return once the stored token is no longer ``invalid_token``.

        Raises :class:`RefreshRequestError` when the refresh function failed.
        """
        ...


class LambdaRefreshRequester:
    """Asks the refresh Lambda function (``REFRESH_FUNCTION_NAME``) for a compare-and-refresh.

    The reader's role needs ``lambda:InvokeFunction`` on it. Replaying the invocation is
    safe (it refreshes only while the rejected token is still stored), so botocore retries.
    """

    def __init__(
        self, function_name: str, client: Any = None, *, budget: CallBudget = READER_REFRESH_INVOKE
    ) -> None:
        self.function_name = function_name
        self._client = client
        self._budget = budget
        self._client_lock = threading.Lock()

    def compare_and_refresh(self, appid: str, invalid_token: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        payload = json.dumps({"appid": appid, "invalid_token": invalid_token}).encode()
        try:
            response = self._lambda().invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=payload
            )
            body = response["Payload"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code") or "UnknownError"
            raise RefreshRequestError(
                f"could not invoke the refresh function {self.function_name} ({code}): check "
                "that it exists and that this role may lambda:InvokeFunction it"
            ) from None
        except BotoCoreError as exc:
            raise RefreshRequestError(
                f"could not invoke the refresh function {self.function_name} ({type(exc).__name__})"
            ) from None
        if response.get("FunctionError"):
            raise RefreshRequestError(
                f"the refresh function {self.function_name} failed to replace the token of {appid}: "
                f"{_error_message(body, invalid_token)}"
            )

    def _lambda(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import boto3

                # A caller is waiting: fail with RefreshRequestError within its budget (the
                # webhook's is a few seconds) rather than boto3's 60 s.
                self._client = boto3.client("lambda", config=self._budget.botocore_config())
            return self._client


class UnconfiguredRefreshRequester:
    """A reader told neither how to reach the refresh function nor how to refresh itself.

    Reading tokens needs neither, so such a reader starts; only a token WeChat rejects
    (:meth:`TokenClient.call <wxtoken.client.TokenClient.call>`) needs a compare-and-refresh,
    and then this says which variable is missing.
    """

    def compare_and_refresh(self, appid: str, invalid_token: str) -> None:
        raise ConfigError(
            f"WeChat rejected the stored token of {appid} and this reader cannot ask for a new one: "
            "set REFRESH_FUNCTION_NAME to the refresh function's name (this role needs "
            "lambda:InvokeFunction on it; docs/readers.md), or WECHAT_APPS_SECRET_ID to refresh "
            "in this process (it then needs the AppSecrets and an allow-listed egress IP)"
        )


def _error_message(body: bytes, invalid_token: str) -> str:
    """The function's ``errorType: errorMessage``, with the rejected token masked just in case."""
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if isinstance(error, dict):
        text = f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
    else:
        text = "no error details returned; see the function's logs"
    return text.replace(invalid_token, "***")[:2000]
