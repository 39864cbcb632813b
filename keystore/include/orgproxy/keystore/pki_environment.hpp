// Which IGC Santé PKI issued a certificate: TEST or production (DOMAIN.md "ORG certificates": the TEST PKI
// mirrors production with "TEST AC ..." names). Plain strings in, so config/ types stay out of the keystore.
#pragma once

#include <string>
#include <string_view>

namespace orgproxy::keystore {

/// The two IGC Santé PKIs; an upstream's `environment` names one, a certificate's issuer the other.
enum class PkiEnvironment { test, production };

/// "test" or "production" (the config's spelling of an upstream's environment).
std::string_view to_string(PkiEnvironment e);

/// The PKI of a certificate from its issuer DN: TEST when a CN of the issuer starts with "TEST "
/// (e.g. "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"), production otherwise. `issuer_dn` may be written
/// as RFC 4514/2253 ("CN=...,O=...,C=FR", X509_NAME_print_ex with XN_FLAG_RFC2253), as OpenSSL's one-line
/// form ("/C=FR/O=.../CN=..."), or as X509_NAME_print_ex's default ("C = FR, O = ..., CN = ..."); RFC 4514
/// backslash escapes are honoured. Attribute names compare case-insensitively ("cn=" too), the value's
/// "TEST " prefix exactly (the ANS writes it upper case).
PkiEnvironment pki_environment_of_issuer(std::string_view issuer_dn);

/// "" when a certificate issued by `issuer_dn` may serve an upstream of `upstream_environment`; otherwise
/// why not, e.g. "certificate from the TEST IGC Santé PKI (issuer CN=TEST AC ...) used for a production
/// upstream: test and production trust are never mixed". The daemon marks such an identity unavailable for
/// that upstream (DESIGN.md "Rules the design keeps").
std::string check_pki_environment(PkiEnvironment upstream_environment, std::string_view issuer_dn);

}  // namespace orgproxy::keystore
