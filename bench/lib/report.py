#!/usr/bin/env python3
"""Summarises bench/run's measurements: a table on stdout and a JSON file.

Inputs: the runs TSV (one row per measured wrk run, header in measure.sh), an optional scale TSV (the
10,000-site start), and a context JSON (mode, machine, load, versions). For every scenario it prints per
contender the median req/s, min-max, median p50/p99, median proxy CPU µs per request (from /proc), and the
identity counts summed over the measured runs; then orgproxy's ratios against each other contender as the
median of the per-round ratios (rounds alternate, so each round's ratio compares runs seconds apart), with
the issue-7 target beside each ratio. Exit status 3 when the identity check is broken (nginx-unsafe showed
no wrong identity), 2 when orgproxy answered a request under a wrong identity, else 0.
Usage: report.py RUNS_TSV SCALE_TSV CONTEXT_JSON OUT_JSON
"""
import csv
import json
import statistics as st
import sys
from collections import OrderedDict, defaultdict

NUM = ["rps", "p50_ms", "p99_ms", "proxy_cpu_us_per_req", "upstream_cpu_us_per_req"]
CNT = ["requests", "non2xx", "sock_errors", "ok", "wrong", "failed", "new_upstream_conn", "resumed"]


def fnum(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def targets_for(scenario, sites):
    """Issue 7's targets: (other contender, minimum ratio of orgproxy's req/s) for this scenario."""
    if scenario.startswith("keepalive"):
        t = [("nginx-fixed", 0.9)]
        if sites >= 2000:
            t.insert(0, ("nginx-safe", 1.5))
        elif sites >= 100:
            t.insert(0, ("nginx-safe", 1.3))
        return t
    if scenario.startswith("newconn"):
        return [("nginx-newconn-engine", 3.0), ("nginx-newconn-memkey", 0.9)]
    return []


def main():
    runs_tsv, scale_tsv, ctx_json, out_json = sys.argv[1:5]
    rows = list(csv.DictReader(open(runs_tsv), delimiter="\t"))
    scen = OrderedDict()
    for r in rows:
        scen.setdefault(r["scenario"], OrderedDict()).setdefault(r["contender"], []).append(r)

    out = {"context": json.load(open(ctx_json)), "scenarios": [], "scale": []}
    status = 0
    for name, by_c in scen.items():
        first = next(iter(by_c.values()))[0]
        sites = int(first["sites"])
        print(f"\n## {name}  ({sites} sites rotated, TLS {first['tls']}, {first['workers']} worker(s) per proxy, "
              f"{len(next(iter(by_c.values())))} rounds)")
        print(f"{'contender':<22} {'req/s median':>12} {'min-max':>15} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'CPU µs/req':>10} {'ok':>9} {'wrong':>7} {'failed':>6} {'new conn':>8}")
        s_out = {"name": name, "sites": sites, "tls": first["tls"], "workers": int(first["workers"]),
                 "contenders": {}, "ratios": [], "notes": []}
        for c, rs in by_c.items():
            med = {k: (st.median([fnum(r[k]) for r in rs if fnum(r[k]) is not None])
                       if any(fnum(r[k]) is not None for r in rs) else None) for k in NUM}
            tot = {k: sum(int(fnum(r[k]) or 0) for r in rs) for k in CNT}
            rps = [fnum(r["rps"]) for r in rs]
            s_out["contenders"][c] = {"median": med, "totals": tot, "rounds": [
                {k: r[k] for k in ["round"] + NUM + CNT} for r in rs]}
            cpu = med["proxy_cpu_us_per_req"]
            print(f"{c:<22} {med['rps']:>12,.0f} {min(rps):>7,.0f}-{max(rps):<7,.0f} {med['p50_ms']:>7.2f} "
                  f"{med['p99_ms']:>7.2f} {cpu if cpu is not None else float('nan'):>10.1f} {tot['ok']:>9} "
                  f"{tot['wrong']:>7} {tot['failed']:>6} {tot['new_upstream_conn']:>8}")
        base = "orgproxy-newconn" if "orgproxy-newconn" in by_c else "orgproxy"
        if base in by_c:
            o_rounds = {r["round"]: fnum(r["rps"]) for r in by_c[base]}
            tmap = dict(targets_for(name, sites))
            for c, rs in by_c.items():
                if c == base:
                    continue
                ratios = [o_rounds[r["round"]] / fnum(r["rps"]) for r in rs
                          if r["round"] in o_rounds and fnum(r["rps"])]
                if not ratios:
                    continue
                ratio = st.median(ratios)
                tgt = tmap.get(c)
                verdict = "" if tgt is None else ("meets" if ratio >= tgt else "BELOW")
                s_out["ratios"].append({"vs": c, "median_of_round_ratios": round(ratio, 3),
                                        "round_ratios": [round(x, 3) for x in ratios],
                                        "target": tgt, "verdict": verdict or None})
                tgt_txt = f"  target >= {tgt}x: {verdict}" if tgt else ""
                print(f"ratio {base} / {c}: {ratio:.2f}x (per round: "
                      f"{', '.join(f'{x:.2f}' for x in ratios)}){tgt_txt}")
            o = s_out["contenders"][base]
            if "nginx-safe" in by_c and name.startswith("keepalive"):
                p_o, p_n = o["median"]["p99_ms"], s_out["contenders"]["nginx-safe"]["median"]["p99_ms"]
                ok = p_o <= p_n
                s_out["notes"].append(f"p99 {base} {p_o:.2f} ms vs nginx-safe {p_n:.2f} ms: "
                                      f"{'meets' if ok else 'BELOW'} target (<=)")
            if o["totals"]["wrong"] or o["totals"]["failed"]:
                s_out["notes"].append(f"{base}: {o['totals']['wrong']} wrong identities, "
                                      f"{o['totals']['failed']} failed responses")
                if o["totals"]["wrong"]:
                    status = max(status, 2)
        for c, co in s_out["contenders"].items():
            if c != base and co["totals"]["failed"]:
                s_out["notes"].append(f"{c}: {co['totals']['failed']} failed responses (errors or no DN): "
                                      f"its req/s counts them, so its figures are not comparable")
        if "nginx-unsafe" in by_c:
            w = s_out["contenders"]["nginx-unsafe"]["totals"]["wrong"]
            if sites <= 1:
                s_out["notes"].append("nginx-unsafe with one site cannot mix identities: no positive control here")
            elif w == 0:
                s_out["notes"].append("POSITIVE CONTROL FAILED: nginx-unsafe showed no wrong identity, "
                                      "so the identity check is broken; the wrong-identity counts prove nothing")
                status = 3
            else:
                total = s_out["contenders"]["nginx-unsafe"]["totals"]["requests"] or 1
                s_out["notes"].append(f"positive control: nginx-unsafe sent {w} of {total} requests "
                                      f"({100.0 * w / total:.0f}%) under another site's certificate: the check works")
        for n in s_out["notes"]:
            print("note:", n)
        out["scenarios"].append(s_out)

    try:
        scale = list(csv.DictReader(open(scale_tsv), delimiter="\t"))
    except FileNotFoundError:
        scale = []
    for r in scale:
        print(f"\n## scale: {r['sites']} sites ({r['key_type']} keys in the token): ready in {r['ready_s']} s "
              f"(target < 2 s), RSS {r['rss_start_mb']} MB after start, {r['rss_touched_mb']} MB after one "
              f"request per site (target < 150 MB); {r['touched_ok']} of {r['sites']} sites answered under "
              f"their own certificate, {r['touched_wrong']} wrong, {r['touched_failed']} failed; "
              f"{r.get('fds_after_touch', '?')} file descriptors open after the touch (idle pooled connections)")
        out["scale"].append(r)

    with open(out_json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nJSON: {out_json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
