#!/usr/bin/env python3
"""Issues the P-256 site keys and ORG certificates of the scale scenario in one process (bench/scale_run).

Usage: scale_pki.py PKI_DIR SITES_FILE. For every line "<id> <sector>" (row i, from 0) of SITES_FILE without
PKI_DIR/sites-ec/<id>.pem yet, writes <id>.key (PKCS#8 PEM, 0600) and <id>.pem (leaf, then the intermediate)
exactly as bench/lib/pki.sh's pki_sites does with two openssl processes per site (same subject, serial
100000 + i, 10 years, the v3_client extensions, issued by PKI_DIR/org.pem), about 100 times faster: 10,000
sites take seconds instead of a quarter of an hour. Needs python3-cryptography; prints how many it issued.
"""
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: scale_pki.py PKI_DIR SITES_FILE", file=sys.stderr)
        return 2
    pki, sites_file = sys.argv[1], sys.argv[2]
    org_pem = open(os.path.join(pki, "org.pem"), "rb").read()
    org = x509.load_pem_x509_certificate(org_pem)
    org_key = serialization.load_pem_private_key(open(os.path.join(pki, "org.key"), "rb").read(), None)
    out_dir = os.path.join(pki, "sites-ec")
    os.makedirs(out_dir, exist_ok=True)
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
        org.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    now = datetime.datetime.now(datetime.timezone.utc)
    issued = 0
    for i, line in enumerate(open(sites_file)):
        if not line.strip():
            continue
        site, sector = line.split()[:2]
        cert_path = os.path.join(out_dir, site + ".pem")
        if os.path.exists(cert_path):
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "75"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Bench Site {i}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Bench Site {i} {sector}"),
        ])
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(org.subject).public_key(key.public_key())
                .serial_number(100000 + i)
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(aki, critical=False)
                .sign(org_key, hashes.SHA256()))
        key_path = os.path.join(out_dir, site + ".key")
        fd = os.open(key_path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(cert_path + ".tmp", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM) + org_pem)
        os.replace(key_path + ".tmp", key_path)
        os.replace(cert_path + ".tmp", cert_path)
        issued += 1
    print(issued)
    return 0


if __name__ == "__main__":
    sys.exit(main())
