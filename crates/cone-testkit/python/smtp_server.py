"""A real SMTP server for the tests: aiosmtpd with STARTTLS required and AUTH (PLAIN, LOGIN) against one user.

Usage: smtp_server.py DIR USER PASSWORD. Makes a self-signed certificate for 127.0.0.1 and localhost (written to
DIR/ca.pem for the client to trust), then writes each message it accepts to DIR/NNNN.eml, and beside it
DIR/NNNN.json: the envelope and what Python's email parser reads (headers, the text and HTML parts). Prints
"READY 127.0.0.1:PORT" once it listens. Plain connections must upgrade before AUTH or MAIL.
"""

import datetime
import email
import email.policy
import ipaddress
import json
import os
import socket
import ssl
import sys
import logging
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def certificate(directory):
    """A certificate authority (DIR/ca.pem) and the server's certificate for 127.0.0.1 and localhost, signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(subject, key, issuer, issuer_key, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cone test CA")])
    ca = issue("cone test CA", ca_key, ca_name, ca_key, True)
    leaf = issue("cone test smtp", key, ca_name, ca_key, False)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    paths = {name: os.path.join(directory, name) for name in ["ca.pem", "server.pem", "key.pem"]}
    contents = {
        "ca.pem": pem(ca),
        "server.pem": pem(leaf),
        "key.pem": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    for name, data in contents.items():
        with open(paths[name], "wb") as f:
            f.write(data)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths["server.pem"], paths["key.pem"])
    return context


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            path = os.path.join(self.directory, f"{self.count:04}.eml")
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        part = lambda kind: message.get_body(preferencelist=(kind,))
        parsed = {
            "received_at_ms": int(time.time() * 1000),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": session.authenticated,
            "headers": {k.lower(): str(v) for k, v in message.items()},
            "text": part("plain").get_content() if part("plain") else None,
            "html": part("html").get_content() if part("html") else None,
        }
        for name, data in [(path, envelope.original_content), (path[:-4] + ".json", json.dumps(parsed).encode())]:
            with open(name + ".part", "wb") as f:
                f.write(data)
            os.rename(name + ".part", name)
        return "250 Message accepted for delivery"


def main():
    # aiosmtpd logs a warning about its own use of a deprecated attribute on every AUTH; errors still show.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    directory, user, password = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
        return AuthResult(success=ok)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(
        Store(directory),
        hostname="127.0.0.1",
        port=port,
        tls_context=certificate(directory),
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    print(f"READY 127.0.0.1:{port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
