#!/usr/bin/python3
"""Parses a SOAP 1.2 fault with zeep, the way a SOAP client application would.

Usage: soap12_fault_zeep.py <file with the HTTP response body>
Prints `code=<Code/Value>`, `reason=<Reason/Text>` and `detail=<text of each Detail child>` lines, as
zeep.exceptions.Fault carries them after zeep's Soap12Binding.process_error read the envelope; exits 2
when zeep does not see a fault.
"""
import sys

from lxml import etree
from zeep.exceptions import Fault
from zeep.wsdl.bindings.soap import Soap12Binding


def main() -> int:
    with open(sys.argv[1], "rb") as f:
        doc = etree.fromstring(f.read())
    # process_error reads only the class's SOAP 1.2 namespaces: no WSDL is needed to parse a fault.
    binding = Soap12Binding.__new__(Soap12Binding)
    try:
        binding.process_error(doc, None)
    except Fault as fault:
        print(f"code={fault.code}")
        print(f"reason={fault.message}")
        if fault.detail is not None:
            for child in fault.detail:
                print(f"detail={etree.QName(child).localname}:{(child.text or '').strip()}")
        return 0
    print("no fault")
    return 2


if __name__ == "__main__":
    sys.exit(main())
