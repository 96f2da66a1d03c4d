"""Secrets Manager reads (wxtoken.secret_values) against moto: the cache window, the errors,
and that neither the value nor AWS's message ever reaches an exception."""

from __future__ import annotations

import threading

import boto3
import pytest

from tests.fixtures.aws import AWS
from wxtoken.errors import ConfigError
from wxtoken.secret_values import SecretReadError, SecretString, read_secret_string

SECRET_ID = "wxtoken/test-secret"
VALUE = "value-one-not-for-logs"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secretsmanager(aws: AWS):
    client = aws.client("secretsmanager")
    client.create_secret(Name=SECRET_ID, SecretString=VALUE)
    return client


def test_the_value_is_read_again_only_after_its_cache_window(secretsmanager) -> None:
    clock = Clock()
    secret = SecretString(SECRET_ID, max_age=300, clock=clock)
    assert secret.get() == VALUE
    secretsmanager.put_secret_value(SecretId=SECRET_ID, SecretString="value-two")

    clock.now += 299
    assert secret.get() == VALUE  # cached: Secrets Manager not asked

    clock.now += 1
    assert secret.get() == "value-two"


def test_max_age_zero_reads_on_every_call(secretsmanager) -> None:
    secret = SecretString(SECRET_ID, max_age=0)
    assert secret.get() == VALUE
    secretsmanager.put_secret_value(SecretId=SECRET_ID, SecretString="value-two")
    assert secret.get() == "value-two"


def test_a_burst_of_cold_callers_makes_one_read(secretsmanager) -> None:
    session = boto3.session.Session()
    sent: list[str] = []
    session.events.register("before-send.secrets-manager.GetSecretValue", lambda **_: sent.append("x"))
    secret = SecretString(SECRET_ID, max_age=300, boto3_session=session)
    barrier = threading.Barrier(8)
    values: list[str] = []

    def read() -> None:
        barrier.wait()
        values.append(secret.get())

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert values == [VALUE] * 8
    assert len(sent) == 1


def test_a_binary_secret_is_read_as_text(aws: AWS) -> None:
    aws.client("secretsmanager").create_secret(Name=SECRET_ID, SecretBinary=b"binary-text")
    assert SecretString(SECRET_ID, max_age=0).get() == "binary-text"


def test_a_missing_secret_names_aws_code_only(aws: AWS) -> None:
    with pytest.raises(SecretReadError) as caught:
        SecretString(SECRET_ID, max_age=0).get()
    assert caught.value.reason == "ResourceNotFoundException"
    with pytest.raises(ConfigError, match=r"could not read the egress proxy secret \(ResourceNotFound"):
        read_secret_string(SECRET_ID, what="egress proxy secret", error=ConfigError)


def test_an_error_says_nothing_of_the_value_or_aws_message(secretsmanager) -> None:
    secret = SecretString(SECRET_ID, max_age=0)
    assert secret.get() == VALUE
    secretsmanager.delete_secret(SecretId=SECRET_ID, RecoveryWindowInDays=7)
    with pytest.raises(SecretReadError) as caught:
        secret.get()
    # AWS's message ("... marked for deletion") and botocore's exception stay out of it.
    assert caught.value.reason == "InvalidRequestException"
    assert str(caught.value) == "InvalidRequestException"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_client_that_cannot_be_made_is_a_read_error_too(aws: AWS, monkeypatch) -> None:
    # botocore refuses a bad endpoint with a ValueError: still a typed error (a 503), not a 500.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "not a url")
    with pytest.raises(SecretReadError) as caught:
        SecretString(SECRET_ID, max_age=0, boto3_session=boto3.session.Session()).get()
    assert caught.value.reason == "ValueError"
