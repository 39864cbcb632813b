// What goes with the SOAP samples of tests/samples (read with load_sample, files.hpp): the Content-Type
// headers a RIS sends with them.
#pragma once

namespace orgproxy::testkit {

/// The Content-Type of tests/samples/dmp-iti41-provide-and-register.mtom: MTOM/XOP whose root part
/// (Content-ID root.part@ris.local) is SOAP 1.2, with the sample's multipart boundary.
inline constexpr const char* kIti41MtomContentType =
    "multipart/related; type=\"application/xop+xml\"; start=\"<root.part@ris.local>\"; "
    "start-info=\"application/soap+xml\"; boundary=\"uuid:0f1e2d3c-aaaa-bbbb-cccc-000000000001\"";

}  // namespace orgproxy::testkit
