#!/usr/bin/python3
"""A real SMTP submission server for the STARTTLS tests: aiosmtpd on loopback, STARTTLS required before any
mail command, a client certificate required in the handshake (verified against the test PKI). Each message
is stored as OUTDIR/msg-N.eml with OUTDIR/peer-N.txt holding the client certificate's subject (OU and CN).

With IMPLICIT given as "implicit", the server speaks TLS from the first byte (SMTPS, RFC 8314) instead.

usage: aiosmtpd_mtls.py CERT KEY CLIENT_CA PORT OUTDIR [IMPLICIT]
"""
import asyncio
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller

cert, key, client_ca, port, outdir = sys.argv[1:6]
implicit = len(sys.argv) > 6 and sys.argv[6] == "implicit"

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
context.load_cert_chain(cert, key)
context.verify_mode = ssl.CERT_REQUIRED


class Store:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        # STARTTLS sessions carry the certificate in session.ssl; implicit TLS on the transport.
        peer = (session.ssl or {}).get("peercert") or server.transport.get_extra_info("peercert") or {}
        fields = dict(item for rdn in peer.get("subject", ()) for item in rdn)
        self.count += 1
        with open(f"{outdir}/peer-{self.count}.txt", "w") as f:
            f.write(f"OU={fields.get('organizationalUnitName', '')}\nCN={fields.get('commonName', '')}\n")
        with open(f"{outdir}/msg-{self.count}.eml", "wb") as f:
            f.write(envelope.original_content)
        return "250 2.0.0 stored"


done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
if implicit:
    # The Controller's readiness probe cannot present a client certificate: serve directly.
    from aiosmtpd.smtp import SMTP

    store = Store()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(
        loop.create_server(lambda: SMTP(store, hostname="127.0.0.1"), "127.0.0.1", int(port), ssl=context))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    print("READY", flush=True)
    done.wait()
    loop.call_soon_threadsafe(loop.stop)
else:
    controller = Controller(Store(), hostname="127.0.0.1", port=int(port), tls_context=context,
                            require_starttls=True)
    controller.start()
    print("READY", flush=True)
    done.wait()
    controller.stop()
