#!/usr/bin/env python3
"""Sends one request per site through a proxy and checks each answer's identity (the 10,000-site scale run).

Usage: touch_sites.py PORT SITES_FILE. Over one keep-alive connection to 127.0.0.1:PORT, POSTs
/dmp/<site id>/soap with the selection header for every site of SITES_FILE (lines "<id> <sector>") and
prints "ok=<n> wrong=<n> failed=<n> seconds=<s>": ok = 200 and the upstream saw OU=<that site> in the
client certificate DN; wrong = 200 under another DN; failed = anything else (no DN is never a pass).
"""
import http.client
import sys
import time


def main():
    port, sites_file = int(sys.argv[1]), sys.argv[2]
    ids = [line.split()[0] for line in open(sites_file) if line.strip()]
    body = b"<soap:Envelope xmlns:soap='http://www.w3.org/2003/05/soap-envelope'><soap:Body/></soap:Envelope>"
    ok = wrong = failed = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.monotonic()
    for site in ids:
        try:
            conn.request("POST", f"/dmp/{site}/soap", body=body,
                         headers={"X-Orgproxy-Tenant": site, "Content-Type": "application/soap+xml"})
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            failed += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        dn = resp.getheader("X-Client-DN") or ""
        if resp.status != 200 or not dn:
            failed += 1
        elif f",OU={site}," in f",{dn},":
            ok += 1
        else:
            wrong += 1
    print(f"ok={ok} wrong={wrong} failed={failed} seconds={time.monotonic() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
