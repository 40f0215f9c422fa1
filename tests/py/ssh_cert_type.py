"""Reads OpenSSH certificates with `cryptography` (an independent parser, not ssh-key)
and prints, per file: its type (USER or HOST), serial, principals and the CA key that
signed it, after checking that signature. Used by tests/it/hosts.rs."""

import sys

from cryptography.hazmat.primitives import serialization as s

for path in sys.argv[1:]:
    with open(path, "rb") as f:
        cert = s.load_ssh_public_identity(f.read())
    cert.verify_cert_signature()  # raises InvalidSignature when the CA did not sign it
    ca = cert.signature_key().public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH)
    print("type", cert.type.name)
    print("serial", cert.serial)
    print("principals", ",".join(p.decode() for p in cert.valid_principals))
    print("ca", ca.decode())
