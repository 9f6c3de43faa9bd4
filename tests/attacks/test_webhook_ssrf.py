"""Attack: aim webhook deliveries at services inside the network (SSRF).

A name that resolves to a public address when the worker checks it and to 127.0.0.1 when it
connects (DNS rebinding); IPv6 spellings of private IPv4 addresses (IPv4-mapped and
-compatible, NAT64, 6to4); site-local, multicast, shared and metadata addresses. The worker
must never connect to them, and the API must refuse them as a run's `webhook_url` (422).
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from activities.webhooks import PublicAddressTransport, WebhookTargetRefused
from tests.api.conftest import APIFactory
from workflows.webhook_targets import literal_target_problem

PUBLIC = "93.184.216.34"
NOT_PUBLIC = [
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::a00:1",  # local-use NAT64 prefix
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "fec0::1",  # site-local
    "ff02::1",  # multicast
    "224.0.0.1",
    "100.64.0.1",  # shared (carrier-grade NAT)
    "169.254.169.254",  # cloud metadata
    "0.0.0.0",
    "127.0.0.1",
    "::1",
    "fe80::1",
]
ALSO_PUBLIC = ["2606:4700:4700::1111", "64:ff9b::5db8:d822", "2002:5db8:d822::1"]


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class LoopbackReceiver:
    """An HTTP/1.1 listener on 127.0.0.1 (connections kept alive) that answers 204 and
    records the connections it accepts and the head of each request."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self.heads: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next(
                    (int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0
                )
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[LoopbackReceiver]:
    listener = LoopbackReceiver()
    server = await asyncio.start_server(listener.serve, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    async with server:
        yield listener


class ScriptedNetwork:
    """The event loop's name resolution and TCP connects, scripted for names in `answers`
    (successive answers, the last one repeating). Every connect is recorded; connects to
    anything but loopback are refused, so no traffic leaves the machine."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._getaddrinfo = loop.getaddrinfo
        self._create_connection = loop.create_connection
        self.answers: dict[str, list[list[str]]] = {}
        self.routes: dict[str, str] = {}
        """Public addresses whose connections the test's loopback listener answers."""
        self.lookups: list[str] = []
        self.connects: list[str] = []

    async def getaddrinfo(self, host: str | bytes, port: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return await self._getaddrinfo(host, port, **kwargs)
        self.lookups.append(name)
        answers = self.answers[name]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port), 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))
            for address in addresses
        ]

    async def create_connection(self, protocol_factory: Any, host: str, port: int, **kwargs: Any) -> Any:
        self.connects.append(host)
        if host in ("127.0.0.1", "::1") or host in self.routes:
            return await self._create_connection(protocol_factory, self.routes.get(host, host), port, **kwargs)
        raise ConnectionRefusedError(f"tests send no traffic to {host}")


@pytest.fixture
async def network(monkeypatch: pytest.MonkeyPatch) -> ScriptedNetwork:
    loop = asyncio.get_running_loop()
    scripted = ScriptedNetwork(loop)
    monkeypatch.setattr(loop, "getaddrinfo", scripted.getaddrinfo)
    monkeypatch.setattr(loop, "create_connection", scripted.create_connection)
    return scripted


async def _post(transport: httpx.AsyncBaseTransport, url: str) -> httpx.Response | Exception:
    async with httpx.AsyncClient(transport=transport) as client:
        try:
            return await client.post(url, content=b"{}")
        except (httpx.HTTPError, WebhookTargetRefused) as err:
            return err


async def test_a_name_that_rebinds_to_loopback_after_the_check_is_never_connected(
    network: ScriptedNetwork, receiver: LoopbackReceiver
) -> None:
    network.answers["rebind.test"] = [[PUBLIC], ["127.0.0.1"]]
    outcome = await _post(PublicAddressTransport(), f"http://rebind.test:{receiver.port}/hook")
    assert receiver.connections == 0, f"the webhook reached 127.0.0.1: {outcome!r}"
    assert network.connects == [PUBLIC], "only the address that was checked is connected to"
    assert network.lookups == ["rebind.test"], "the name is resolved once"
    assert isinstance(outcome, httpx.ConnectError), outcome


def _certificate_for(name: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for `name`, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_https_to_the_pinned_address_still_verifies_the_host_name(
    network: ScriptedNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to the checked address, but SNI, the certificate check and the
    Host header are for the URL's name; and a connection verified for one name is never
    reused for another name at the same address."""
    cert_path, key_path = _certificate_for("hooks.test", tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    server_names: list[str | None] = []
    server_tls.sni_callback = lambda _socket, name, _context: server_names.append(name)
    listener = LoopbackReceiver()
    server = await asyncio.start_server(listener.serve, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    network.answers.update({"hooks.test": [[PUBLIC]], "other.test": [[PUBLIC]]})
    network.routes[PUBLIC] = "127.0.0.1"
    transport = PublicAddressTransport()
    async with server, httpx.AsyncClient(transport=transport) as client:
        delivered = await client.post(f"https://hooks.test:{port}/hook", content=b"{}")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(f"https://other.test:{port}/hook", content=b"{}")
    assert delivered.status_code == 204
    assert network.connects == [PUBLIC, PUBLIC], "each name got its own connection to the checked address"
    assert server_names[0] == "hooks.test" and f"host: hooks.test:{port}".encode() in listener.heads[0].lower()


@pytest.mark.parametrize("address", NOT_PUBLIC)
async def test_a_name_with_any_address_inside_the_network_is_refused_before_connecting(
    network: ScriptedNetwork, address: str
) -> None:
    network.answers["hooks.test"] = [[PUBLIC, address]]
    outcome = await _post(PublicAddressTransport(), "http://hooks.test/hook")
    assert isinstance(outcome, WebhookTargetRefused), outcome
    assert f"resolves to {address}" in str(outcome)
    assert network.connects == []


@pytest.mark.parametrize("address", NOT_PUBLIC)
async def test_a_literal_address_inside_the_network_is_refused_before_connecting(
    network: ScriptedNetwork, address: str
) -> None:
    outcome = await _post(PublicAddressTransport(), f"http://{_url_host(address)}/hook")
    assert isinstance(outcome, WebhookTargetRefused), outcome
    assert network.connects == []


async def test_allowed_hosts_are_reached_although_they_are_loopback(
    network: ScriptedNetwork, receiver: LoopbackReceiver
) -> None:
    network.answers["hooks.internal"] = [["127.0.0.1"]]
    allowed = PublicAddressTransport(frozenset({"127.0.0.1", "hooks.internal"}))
    for host in ("127.0.0.1", "hooks.internal"):
        outcome = await _post(allowed, f"http://{host}:{receiver.port}/hook")
        assert isinstance(outcome, httpx.Response) and outcome.status_code == 204, (host, outcome)
    assert receiver.connections == 2


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_literal_target_problem_refuses_addresses_inside_the_network(address: str) -> None:
    problem = literal_target_problem(_url_host(address), frozenset())
    assert problem is not None and "not a public address" in problem
    assert literal_target_problem(_url_host(address), frozenset({address})) is None, "unless allowed"


@pytest.mark.parametrize("address", [PUBLIC, *ALSO_PUBLIC])
def test_literal_target_problem_lets_public_addresses_through(address: str) -> None:
    assert literal_target_problem(_url_host(address), frozenset()) is None


async def test_the_api_refuses_webhook_urls_inside_the_network(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        for address in NOT_PUBLIC:
            body = {"input": "x", "model": "m-ok", "webhook_url": f"https://{_url_host(address)}/hook?token=t"}
            answer = await api.http.post("/v1/orchestrations", json=body)
            assert answer.status_code == 422, (address, answer.text)
            assert answer.json()["error"]["code"] == "webhook_url_refused", (address, answer.text)
        public = {"input": "x", "model": "m-ok", "webhook_url": f"https://{PUBLIC}/hook"}
        accepted = await api.http.post("/v1/orchestrations", json=public)
        assert accepted.status_code == 202, accepted.text
