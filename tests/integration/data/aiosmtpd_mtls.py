#!/usr/bin/python3
"""A real SMTP submission server for the STARTTLS tests: aiosmtpd on loopback, STARTTLS required before any
mail command, a client certificate required in the handshake (verified against the test PKI). Each message
is stored as OUTDIR/msg-N.eml with OUTDIR/peer-N.txt holding the client certificate's subject (OU and CN).

usage: aiosmtpd_mtls.py CERT KEY CLIENT_CA PORT OUTDIR
"""
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller

cert, key, client_ca, port, outdir = sys.argv[1:6]

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
context.load_cert_chain(cert, key)
context.verify_mode = ssl.CERT_REQUIRED


class Store:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        peer = (session.ssl or {}).get("peercert") or {}
        fields = dict(item for rdn in peer.get("subject", ()) for item in rdn)
        self.count += 1
        with open(f"{outdir}/peer-{self.count}.txt", "w") as f:
            f.write(f"OU={fields.get('organizationalUnitName', '')}\nCN={fields.get('commonName', '')}\n")
        with open(f"{outdir}/msg-{self.count}.eml", "wb") as f:
            f.write(envelope.original_content)
        return "250 2.0.0 stored"


controller = Controller(Store(), hostname="127.0.0.1", port=int(port), tls_context=context,
                        require_starttls=True)
controller.start()
print("READY", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
controller.stop()
