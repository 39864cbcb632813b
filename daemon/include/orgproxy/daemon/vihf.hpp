// The VIHF (DOMAIN.md "VIHF"): the SAML 2.0 assertion a RIS puts in the wsse:Security header of its SOAP 1.2
// requests to the DMP. orgproxy reads it (never verifies its XML signature: the DMP does) to select or check
// the site, and to write the audit line the DMP's traceability requirement asks for.
// Pure functions over bytes already buffered: no sockets here (vihf_gate.hpp does the bounded reading).
#pragma once

#include <openssl/x509.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace orgproxy::daemon {

/// What orgproxy uses of a VIHF assertion. Texts are as written, surrounding XML whitespace trimmed.
struct Vihf {
  std::string structure_id;  ///< attribute Identifiant_Structure (the site's full structure identifier)
  std::string auth_mode;     ///< attribute Authentification_Mode (INDIRECTE, INDIRECTE_RENFORCEE, ...)
  std::string sector;        ///< attribute Secteur_Activite (e.g. SA09^1.2.250.1.71.4.2.4)
  std::string name_id;       ///< saml:Subject/saml:NameID: the user (e.g. an RPPS), for the audit log
  std::string issuer;        ///< saml:Issuer: the DN of the certificate that signed the assertion
};

/// Outcome of looking for a VIHF in a SOAP envelope (or its first bytes).
struct VihfScan {
  enum class Status {
    found,       ///< a complete assertion in soap:Header/wsse:Security; `vihf` is filled
    absent,      ///< a SOAP 1.2 envelope whose header holds no SAML 2.0 assertion in wsse:Security
    incomplete,  ///< the bytes end before the assertion (or the header) does: more bytes are needed
    malformed,   ///< not well-formed XML, a DTD, not a SOAP 1.2 envelope, or an ambiguous VIHF; see `error`
  };
  Status status = Status::absent;
  Vihf vihf;
  std::string error;  ///< for `malformed`: what and where (line), never the document's content
  /// For `malformed`: a DTD, an entity, or a VIHF given twice: a message built to read differently here
  /// and at the DMP, refused even where the VIHF is only checked. (Plain bad XML, or XML that is no SOAP
  /// 1.2 envelope, is the upstream's to judge unless the VIHF selects the site.)
  bool hostile = false;
  /// A SOAP 1.2 Envelope start tag was read (an `incomplete` scan of something that is not SOAP at all
  /// leaves it false).
  bool envelope_seen = false;
};

/// Reads the VIHF from `xml`, the SOAP 1.2 envelope or its first bytes (`complete` = false when more bytes
/// may follow). Only soap12:Envelope/soap12:Header/wsse:Security/saml2:Assertion counts (namespaces by URI,
/// not by prefix: OASIS WSS 1.1 SAML Token Profile, SAML 2.0 core §2). Parsing is libxml2's xmlTextReader
/// with no network, no DTD loading, no entity substitution; a document with a DOCTYPE is refused (SOAP 1.2
/// Part 1 §5: "a SOAP message MUST NOT contain a Document Type Declaration"). Two assertions, or an
/// attribute given twice, are `malformed` (one reading for orgproxy and another for the DMP is how a
/// forged VIHF would slip through). Stops reading at the end of the header. Never throws but bad_alloc.
VihfScan scan_vihf(std::string_view xml, bool complete);

/// The fast path of the VIHF check: true only when `envelope`, a COMPLETE envelope, provably holds no SAML
/// assertion and nothing scan_vihf refuses as hostile (DTD, entity), i.e. scan_vihf(envelope, true) is
/// `absent`, or `malformed` but not `hostile`: the same decision where the VIHF is only checked. It holds
/// when the bytes are decoded as UTF-8 (no BOM other than UTF-8's, no NUL, no declared encoding but UTF-8
/// or US-ASCII, strict UTF-8), "Assertion" does not occur, every "<!" opens a comment or a CDATA section
/// and every '&' a predefined entity or a character reference. False means "parse it". Linear, no allocation.
bool vihf_surely_absent(std::string_view envelope);

/// The SOAP envelope's bytes inside a request body (prefix): the whole prefix for `application/soap+xml`;
/// for MTOM/XOP (`multipart/related`, RFC 2387) the root part: the one whose Content-ID is the `start`
/// parameter, else the first part. `body` may be a prefix of the body. Returns false with `error` set when
/// the multipart framing is unusable (no boundary, root part not found within the prefix while
/// `body_complete`); `envelope_complete` tells whether the envelope's end was seen.
struct SoapEnvelopeSpan {
  bool ok = false;
  std::string_view envelope;
  bool envelope_complete = false;
  bool need_more = false;  ///< the prefix ends before the root part's content starts
  std::string error;
};
SoapEnvelopeSpan soap_envelope_of(std::string_view content_type, std::string_view body, bool body_complete);

/// Decodes the chunked transfer coding (RFC 9112 §7.1) of `raw`, the first bytes of a chunked body, into
/// the payload bytes they hold (at most `max_payload`). `complete` is set when the last chunk was seen.
/// Returns false on invalid chunk framing (the request is then answered by the normal body relay).
bool dechunk_prefix(std::string_view raw, std::size_t max_payload, std::string& payload, bool& complete);

/// Whether the VIHF Issuer text (an RFC 4514 DN string, as SAML's X509SubjectName format writes it) names
/// `subject`. Both are compared as X.509 names with OpenSSL's X509_NAME_cmp (canonical form: case and inner
/// spaces folded, attribute types by OID), never as strings. RFC 4514 writes the most specific RDN first;
/// the reverse order (as OpenSSL's X509_NAME_print writes it) is accepted too. An unparsable DN is no match.
bool issuer_names_subject(std::string_view issuer_dn, const X509_NAME* subject);

}  // namespace orgproxy::daemon
