"""How every process reaches Temporal: the SDK's environment configuration
(`temporalio.envconfig`), one code path for the worker, the API and `orch dev`'s check.

The variables are the SDK's own, the ones Temporal's CLI reads too: `TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS`, `TEMPORAL_TLS_SERVER_CA_CERT_PATH`
(or `_DATA`), `TEMPORAL_TLS_CLIENT_CERT_PATH` and `TEMPORAL_TLS_CLIENT_KEY_PATH` (or `_DATA`),
`TEMPORAL_TLS_SERVER_NAME`, `TEMPORAL_GRPC_META_*`, and a profile (`TEMPORAL_PROFILE`) of
the TOML config file (`TEMPORAL_CONFIG_FILE`, default `~/.config/temporalio/temporal.toml`).
Unset, a process connects to `localhost:7233`, namespace `default`, without TLS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from temporalio.client import Client, Plugin
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.envconfig import ClientConfig, ClientConnectConfig

from worker import tracing
from worker.plugin import OrchestrationPlugin

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
ENVIRONMENT_VARIABLES = frozenset(
    {
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_API_KEY",
        "TEMPORAL_TLS",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_CERT_DATA",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_DATA",
        "TEMPORAL_TLS_SERVER_NAME",
        "TEMPORAL_PROFILE",
        "TEMPORAL_CONFIG_FILE",
    }
)
"""The variables the SDK's environment configuration reads (and `TEMPORAL_GRPC_META_*`); the
README's table and deploy/ use these names."""
CLOSED_BY_SERVER = ("close_notify", "UnexpectedEof", "BrokenPipe", "ConnectionReset", "connection closed")
"""How the transport (rustls, hyper) says the server hung up: a TLS server refusing a client
without a certificate, or a TLS server spoken to in plaintext."""


class TemporalConfigError(Exception):
    """The Temporal connection settings cannot be used (a missing certificate file, an unknown
    profile, a malformed config file), said in one line."""


class TemporalConnectError(Exception):
    """Temporal could not be reached with these settings, said in one line."""


@dataclass(frozen=True)
class TemporalConnection:
    """`Client.connect`'s arguments as the environment configuration gives them."""

    config: ClientConnectConfig

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> TemporalConnection:
        """The connection that TEMPORAL_* variables (`env`, default the process's), the
        profile and the config file describe."""
        try:
            config = ClientConfig.load_client_connect_config(override_env_vars=env)
        except Exception as err:  # the SDK raises OSError, ValueError or RuntimeError from its loader
            raise TemporalConfigError(f"Temporal connection settings: {_one_line(err)}") from None
        config.setdefault("target_host", DEFAULT_ADDRESS)
        config.setdefault("namespace", DEFAULT_NAMESPACE)
        return cls(config)

    @classmethod
    def plain(cls, address: str, namespace: str = DEFAULT_NAMESPACE) -> TemporalConnection:
        """A connection without TLS or API key (a local dev server)."""
        return cls(ClientConnectConfig(target_host=address, namespace=namespace))

    @property
    def address(self) -> str:
        return self.config.get("target_host", DEFAULT_ADDRESS)

    @property
    def namespace(self) -> str:
        return self.config.get("namespace", DEFAULT_NAMESPACE)

    def describe(self) -> str:
        """Where and how, without secrets: `host:port (namespace x, TLS, client certificate)`."""
        tls = self.config.get("tls")
        how = [f"namespace {self.namespace}"]
        if tls:
            how.append("TLS")
            if tls is not True and tls.client_cert:
                how.append("client certificate")
        if self.config.get("api_key"):
            how.append("API key")
        return f"{self.address} ({', '.join(how)})"

    async def connect(self, encryption_key: str | None, *, lazy: bool = False) -> Client:
        """A client with this service's plugin (data converter, workflows, sandbox runner).
        `lazy`: connect on first use (the API starts while Temporal is still coming up)."""
        plugins: list[Plugin] = [OrchestrationPlugin(encryption_key)]
        if tracing.enabled():
            # Spans for the workflow start, the workflow and its activities, in the caller's trace.
            plugins.append(OpenTelemetryPlugin(add_temporal_spans=True))
        try:
            return await Client.connect(**self.config, plugins=plugins, lazy=lazy)
        except RuntimeError as err:  # the SDK's connect failures
            raise TemporalConnectError(f"cannot connect to Temporal at {self.describe()}: {failure(err)}") from None


def failure(err: BaseException) -> str:
    """Why a connection failed, in one line, with the settings to look at for the usual TLS
    mistakes (the SDK's message is the transport's)."""
    reason = _one_line(err).removeprefix("Failed client connect: ")
    if "UnknownIssuer" in reason:
        return f"{reason}; the server's certificate is not signed by the CA in TEMPORAL_TLS_SERVER_CA_CERT_PATH"
    if any(sign in reason for sign in CLOSED_BY_SERVER):
        return (
            f"{reason}; the server closed the connection: if it requires TLS, set TEMPORAL_TLS=true; if it "
            "requires a client certificate, set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"
        )
    return reason


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
