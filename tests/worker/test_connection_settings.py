"""The Temporal connection settings are the SDK's environment configuration: every variable
the README and deploy/ name changes what `TemporalConnection.from_environment` loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.connection import ENVIRONMENT_VARIABLES, TemporalConfigError, TemporalConnection


def _values(tmp_path: Path) -> dict[str, str]:
    pem = tmp_path / "some.pem"
    pem.write_text("PEM")
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        '[profile.default]\naddress = "file.example:7233"\n\n'
        '[profile.cloud]\naddress = "cloud.example:7233"\nnamespace = "ns.acct"\n'
    )
    return {
        "TEMPORAL_ADDRESS": "temporal.example:7233",
        "TEMPORAL_NAMESPACE": "payments",
        "TEMPORAL_API_KEY": "key",
        "TEMPORAL_TLS": "true",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pem),
        "TEMPORAL_TLS_SERVER_CA_CERT_DATA": "PEM",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(pem),
        "TEMPORAL_TLS_CLIENT_CERT_DATA": "PEM",
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(pem),
        "TEMPORAL_TLS_CLIENT_KEY_DATA": "PEM",
        "TEMPORAL_TLS_SERVER_NAME": "temporal.example",
        "TEMPORAL_PROFILE": "cloud",
        "TEMPORAL_CONFIG_FILE": str(profile),
    }


def test_unset_means_a_local_dev_server() -> None:
    connection = TemporalConnection.from_environment({})
    assert connection.config == {"target_host": "localhost:7233", "namespace": "default"}
    assert connection.describe() == "localhost:7233 (namespace default)"


@pytest.mark.parametrize("name", sorted(ENVIRONMENT_VARIABLES))
def test_every_documented_variable_is_read(name: str, tmp_path: Path) -> None:
    values = _values(tmp_path)
    env = {name: values[name]}
    if name == "TEMPORAL_PROFILE":
        env["TEMPORAL_CONFIG_FILE"] = values["TEMPORAL_CONFIG_FILE"]
    assert TemporalConnection.from_environment(env).config != TemporalConnection.from_environment({}).config


def test_cloud_with_an_api_key_is_tls_without_a_client_certificate() -> None:
    env = {"TEMPORAL_ADDRESS": "eu.aws.api.temporal.io:7233", "TEMPORAL_NAMESPACE": "ns.acct", "TEMPORAL_API_KEY": "k"}
    connection = TemporalConnection.from_environment(env)
    assert connection.config["tls"] is True and connection.config["api_key"] == "k"
    assert connection.describe() == "eu.aws.api.temporal.io:7233 (namespace ns.acct, TLS, API key)"
    assert "k" not in connection.describe().split()


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nowhere/client.pem"}, "/nowhere/client.pem"),
        ({"TEMPORAL_PROFILE": "nope"}, "Profile 'nope' not found"),
    ],
)
def test_unusable_settings_are_one_line(env: dict[str, str], problem: str) -> None:
    with pytest.raises(TemporalConfigError) as raised:
        TemporalConnection.from_environment(env)
    assert problem in str(raised.value) and "\n" not in str(raised.value)
