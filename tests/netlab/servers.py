"""The lab's services, and the certificates its HTTPS server presents.

Run as a script inside a namespace (`servers.py tcp|udp|http|servfail --port N ...`); each
server listens dual-stack on `::` and prints "ready" once it accepts traffic. The lab imports the
certificate helpers to build its CA and the server certificates of each TLS kind.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import socket
import socketserver
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TlsKind = Literal["valid", "expired", "mismatch", "untrusted"]

# ---- certificates ----------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_ca(directory: Path) -> tuple[Path, Path]:
    """Write the lab CA's certificate and key; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("hopscope lab CA"))
        .issuer_name(_name("hopscope lab CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def make_server_cert(
    kind: TlsKind,
    directory: Path,
    ca: tuple[Path, Path],
    names: list[str],
    addresses: list[str],
) -> tuple[Path, Path]:
    """Write a server certificate of `kind` for `names` and `addresses`; returns (cert, key).

    valid: issued by the CA for the names. expired: the same, but its validity ended yesterday.
    mismatch: issued by the CA for another name only. untrusted: self-signed for the names.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    if kind == "mismatch":
        names, addresses = ["elsewhere.example"], []
    if kind == "expired":
        not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    if kind == "untrusted":
        issuer_name, signing_key = _name(names[0]), key
    else:
        ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
        ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        issuer_name, signing_key = ca_cert.subject, ca_key
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    )
    if kind != "untrusted":
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    cert = builder.sign(signing_key, hashes.SHA256())
    cert_path, key_path = directory / f"{kind}.pem", directory / f"{kind}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def self_signed(
    directory: Path, name: str, *, ca: bool = False, files: tuple[str, str] | None = None
) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 named `name`, valid for a day, and its key;
    returns (cert, key), by default `<name>.crt` and `<name>.key`. `ca`: marked as a CA, for a
    client to trust it as its own anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    cert = builder.add_extension(
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        critical=False,
    ).sign(key, hashes.SHA256())
    cert_name, key_name = files or (f"{name}.crt", f"{name}.key")
    cert_path, key_path = directory / cert_name, directory / key_name
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


# ---- servers ---------------------------------------------------------------------------------


def _ready() -> None:
    print("ready", flush=True)


def serve_tcp(port: int) -> None:
    """Accept and close: enough for a handshake to succeed."""
    with socket.create_server(
        ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=128
    ) as server:
        _ready()
        while True:
            conn, _ = server.accept()
            conn.close()


def _udp_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    return sock


def serve_udp_echo(port: int) -> None:
    with _udp_socket(port) as sock:
        _ready()
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)


def servfail(query: bytes) -> bytes | None:
    """The SERVFAIL answer to a DNS query: its header and question, flags flipped to a reply."""
    if len(query) < 12:
        return None
    end = 12
    while end < len(query) and query[end]:
        end += query[end] + 1
    end += 5  # the root label, QTYPE and QCLASS
    flags = bytes([0x80 | (query[2] & 0x79), 0x80 | 2])  # QR, opcode and RD kept; RA, SERVFAIL
    return query[:2] + flags + b"\x00\x01" + bytes(6) + query[12:end]


def serve_dns_servfail(port: int) -> None:
    """A DNS server (UDP) failing every query: dnsmasq only relays SERVFAIL, never makes one."""
    with _udp_socket(port) as sock:
        _ready()
        while True:
            query, peer = sock.recvfrom(65535)
            answer = servfail(query)
            if answer is not None:
                sock.sendto(answer, peer)


class _DualStackHTTPServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # HTTPServer.server_bind would look up the FQDN of "::": a DNS query to nobody.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "lab", self.server_address[1]

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        # The handshake runs in the connection's thread, so a stuck client blocks only itself.
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except OSError:  # ssl.SSLError included
                return  # the client rejected our certificate: exactly what TLS tests provoke
        super().finish_request(request, client_address)


def serve_http(
    port: int, status: int, cert: str | None, key: str | None, body_bytes: int = 0
) -> None:
    class Handler(BaseHTTPRequestHandler):
        def _respond(self, with_body: bool) -> None:
            body = b"x" * body_bytes if body_bytes else f"{status}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._respond(with_body=True)

        def do_HEAD(self) -> None:
            self._respond(with_body=False)

    server = _DualStackHTTPServer(("::", port), Handler)
    if cert and key:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.tls = context
    _ready()
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="A lab service.")
    parser.add_argument("kind", choices=["tcp", "udp", "http", "servfail"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--body-bytes", type=int, default=0)
    args = parser.parse_args()
    if args.kind == "tcp":
        serve_tcp(args.port)
    elif args.kind == "udp":
        serve_udp_echo(args.port)
    elif args.kind == "servfail":
        serve_dns_servfail(args.port)
    else:
        serve_http(args.port, args.status, args.cert, args.key, args.body_bytes)


if __name__ == "__main__":
    main()
