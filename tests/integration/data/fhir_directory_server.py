#!/usr/bin/env python3
"""A local stand-in for the Annuaire Santé FHIR API (R4, JSON), for orgproxy's onboarding tests.

Serves, under /fhir/v2:
  GET PractitionerRole?practitioner.identifier=<system>|<idNatPS>[&_page=N]...  pages of a searchset Bundle
      (PractitionerRole entries, included Organizations with search.mode "include", a "next" link)
  GET Practitioner?identifier=<system>|<idNatPS>                                a searchset Bundle
  GET Organization/<id>                                                         one Organization
Every request must carry the ESANTE-API-KEY header with the expected key, otherwise 401 with an
OperationOutcome. Each request is appended to the log file as "<key-ok|key-bad> <path?query>".
The data file (JSON) holds "practitioners", "roles" (idNatPS -> list of pages, each a list of entries) and
"organizations"; the string "{{BASE}}" in it is replaced with this server's base URL.
"""
import argparse
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PERSON_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), None)
    base = "http://127.0.0.1:%d/fhir/v2" % server.server_address[1]
    with open(args.data, encoding="utf-8") as f:
        data = json.loads(f.read().replace("{{BASE}}", base))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def send_json(self, status, body):
            raw = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json;charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def outcome(self, status, text):
            self.send_json(status, {"resourceType": "OperationOutcome",
                                    "issue": [{"severity": "error", "code": "security", "diagnostics": text}]})

        def do_GET(self):
            key_ok = self.headers.get("ESANTE-API-KEY") == args.api_key
            with open(args.log, "a", encoding="utf-8") as log:
                log.write("%s %s\n" % ("key-ok" if key_ok else "key-bad", self.path))
            if not key_ok:
                return self.outcome(401, "invalid or missing API key")
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if not url.path.startswith("/fhir/v2/"):
                return self.outcome(404, "unknown path")
            resource = url.path[len("/fhir/v2/"):]
            if resource == "PractitionerRole":
                ident = query.get("practitioner.identifier", [""])[0]
                system, _, value = ident.partition("|")
                if system != PERSON_SYSTEM:
                    return self.outcome(400, "unexpected identifier system")
                pages = data["roles"].get(value, [[]])
                page = int(query.get("_page", ["1"])[0])
                bundle = {"resourceType": "Bundle", "type": "searchset", "entry": pages[page - 1],
                          "link": [{"relation": "self", "url": base + "/PractitionerRole?" + url.query}]}
                if page < len(pages):
                    nxt = dict(query)
                    nxt["_page"] = [str(page + 1)]
                    bundle["link"].append({"relation": "next", "url": base + "/PractitionerRole?" +
                                           urllib.parse.urlencode(nxt, doseq=True)})
                return self.send_json(200, bundle)
            if resource == "Practitioner":
                system, _, value = query.get("identifier", [""])[0].partition("|")
                entries = [{"resource": data["practitioners"][value]}] if value in data["practitioners"] else []
                return self.send_json(200, {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
                                            "entry": entries})
            if resource.startswith("Organization/"):
                org = data["organizations"].get(resource[len("Organization/"):])
                return self.send_json(200, org) if org else self.outcome(404, "no such Organization")
            return self.outcome(404, "unknown resource")

    server.RequestHandlerClass = Handler
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
