#!/usr/bin/env python3
"""Prints N valid practice-site identifiers, one per line: "<id> <sector>".

Even rows are SA09 sites, "3" + SIRET (SIREN with its Luhn key + NIC, the 14 digits Luhn-valid); odd rows
are SA08 cabinets, "4" + RPPS (11 digits, Luhn) + a 3-digit rang. The list is deterministic (the same N gives
the same ids, so cached certificates and token objects keep matching) and never uses La Poste's SIREN
356000000, whose SIRETs follow another rule. Usage: site_ids.py N
"""
import sys


def luhn_digit(payload: str) -> str:
    """Check digit that makes payload + digit Luhn-valid (doubling starts at the payload's last digit)."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(digits: str) -> bool:
    return luhn_digit(digits[:-1]) == digits[-1]


def siret_site(i: int) -> str:
    siren8 = f"{81000000 + i:08d}"
    siren = siren8 + luhn_digit(siren8)
    nic4 = f"{(i % 9000) + 1:04d}"
    siret = siren + nic4 + luhn_digit(siren + nic4)
    assert siren != "356000000" and luhn_ok(siren) and luhn_ok(siret) and len(siret) == 14
    return "3" + siret


def rpps_rang_site(i: int) -> str:
    rpps10 = f"{1000000000 + i:010d}"
    rpps = rpps10 + luhn_digit(rpps10)
    assert luhn_ok(rpps) and len(rpps) == 11
    return "4" + rpps + f"{(i % 999) + 1:03d}"


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("usage: site_ids.py N", file=sys.stderr)
        return 2
    for i in range(int(sys.argv[1])):
        if i % 2 == 0:
            print(siret_site(i), "SA09")
        else:
            print(rpps_rang_site(i), "SA08")
    return 0


if __name__ == "__main__":
    sys.exit(main())
