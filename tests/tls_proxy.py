"""A TLS-terminating proxy for tests: what a secured Temporal frontend (or Temporal Cloud with
mTLS) looks like to a client, in front of a plaintext dev server.

`certificates(dir)` makes a CA, a server certificate for 127.0.0.1 and `localhost`, a client
certificate the CA signed, and a second CA that signed neither. `TLSProxy` accepts TLS with
ALPN `h2` only from clients presenting a certificate the CA signed, then pipes the bytes (gRPC
over HTTP/2) to the dev server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.scripted_llm import free_port


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed neither certificate: trusting it instead of `ca` must fail."""


def certificates(directory: Path) -> Certificates:
    ca_key, ca = _authority("test CA")
    other_key, other = _authority("some other CA")
    server_key, server = _leaf("localhost", ca_key, ca, server=True)
    client_key, client = _leaf("orchestration-worker", ca_key, ca, server=False)
    paths = Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )
    written = ((paths.ca, ca), (paths.server_cert, server), (paths.client_cert, client), (paths.other_ca, other))
    for path, certificate in written:
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pkcs8 = serialization.PrivateFormat.PKCS8
    for path, key in ((paths.server_key, server_key), (paths.client_key, client_key)):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
    del other_key
    return paths


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))


def _authority(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return key, builder.sign(key, hashes.SHA256())


def _leaf(
    common_name: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
    )
    return key, builder.sign(ca_key, hashes.SHA256())


class TLSProxy:
    """Accepts mTLS (ALPN h2, client certificate signed by `certs.ca`) and forwards to `target`."""

    def __init__(self, certs: Certificates, target: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.verified_clients = 0
        """Connections whose client certificate the CA signed (the handshake completed)."""
        self.refused_handshakes = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._target_host, _, port = target.rpartition(":")
        self._target_port = int(port)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.server_cert, certs.server_key)
        context.load_verify_locations(certs.ca)
        context.verify_mode = ssl.CERT_REQUIRED
        context.set_alpn_protocols(["h2"])
        self._context = context

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[TLSProxy]:
        server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            server.close()
            for writer in list(self._open):
                writer.close()
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await writer.start_tls(self._context)
        except (ssl.SSLError, ConnectionError, OSError):
            self.refused_handshakes += 1
            writer.close()
            return
        self.verified_clients += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self._target_host, self._target_port)
        except OSError:
            writer.close()
            return
        self._open.update((writer, upstream_writer))
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True)
        finally:
            self._open.difference_update((writer, upstream_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
