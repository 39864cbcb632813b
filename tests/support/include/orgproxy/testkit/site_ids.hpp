// Valid invented site identifiers for tests (DOMAIN.md "Identifiers of a site"): Luhn keys computed, never
// hard-coded guesses.
#pragma once

#include <string>
#include <string_view>

namespace orgproxy::testkit {

/// Luhn check digit ('0'..'9') that makes `digits` + it valid (ISO/IEC 7812-1 annex B).
/// Throws std::invalid_argument on a non-digit.
char luhn_check_digit(std::string_view digits);

/// True when the decimal string passes the Luhn check.
bool luhn_ok(std::string_view digits);

/// A SA09-style site id: "3" + SIRET, the SIRET being `first13` (13 digits) + its Luhn key.
std::string site_id_siret(std::string_view first13);

/// A SA07/SA08-style site id: "4" + RPPS (`rpps10` = 10 digits + Luhn key) + `rang` (3 digits).
std::string site_id_rpps_rang(std::string_view rpps10, std::string_view rang);

/// The test suite's fixed sites: A = 312345678200002 (3 + SIRET), B = 498765432103017 (4 + RPPS + rang 017),
/// C = a second RPPS-rang site (SA07). All three pass the Luhn checks (asserted by the kit's own tests).
inline constexpr std::string_view kSiteA = "312345678200002";
inline constexpr std::string_view kSiteB = "498765432103017";
std::string site_c();

}  // namespace orgproxy::testkit
