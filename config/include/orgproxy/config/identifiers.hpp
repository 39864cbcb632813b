// French national structure and person identifiers (DOMAIN.md "Identifiers of a site").
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace orgproxy::config {

/// Luhn check over a string of decimal digits (ISO/IEC 7812-1 annex B). False on any non-digit.
bool luhn_valid(std::string_view digits);

/// Type of a national structure identifier, from its first character.
enum class StructureIdType { adeli = 0, finess = 1, siren = 2, siret = 3, rpps_rang = 4 };

struct StructureIdCheck {
  bool ok = false;
  StructureIdType type = StructureIdType::siret;
  std::string error;    ///< why not ok: names the rule and, for a bare SIRET/RPPS, the full form to write
  std::string warning;  ///< accepted but suspicious (e.g. a FINESS whose key does not match)
};

/// Validates a full national structure identifier (type digit + identifier):
/// `0`+ADELI (9 digits), `1`+FINESS (9 chars, key checked when all digits: warning only),
/// `2`+SIREN (9 digits, Luhn), `3`+SIRET (14 digits, Luhn; La Poste SIREN 356000000: digit sum % 5),
/// `4`+RPPS (11 digits, Luhn)+rang (3 digits). A bare 14-digit SIRET or 11-digit RPPS is an error that
/// shows the full form.
StructureIdCheck check_structure_id(std::string_view id);

/// Validates an 11-digit RPPS number (Luhn).
bool rpps_valid(std::string_view rpps);

}  // namespace orgproxy::config
