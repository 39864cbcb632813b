// Rules: /work/shared/DOMAIN.md "Identifiers of a site"; Luhn as in ISO/IEC 7812-1 annex B.
#include "orgproxy/config/identifiers.hpp"

namespace orgproxy::config {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  return true;
}

int digit_sum(std::string_view digits) {
  int sum = 0;
  for (char c : digits) sum += c - '0';
  return sum;
}

// SIREN of La Poste, whose establishments' SIRETs do not satisfy Luhn (INSEE: digit sum divisible by 5).
constexpr std::string_view kLaPosteSiren = "356000000";

bool siret_valid(std::string_view siret) {
  if (siret.size() != 14 || !all_digits(siret)) return false;
  if (luhn_valid(siret)) return true;
  return siret.substr(0, 9) == kLaPosteSiren && digit_sum(siret) % 5 == 0;
}

std::string length_error(std::string_view id, std::string_view type_name, std::size_t expected,
                         std::string_view shape) {
  return "'" + std::string(id) + "' starts with type digit " + std::string(1, id[0]) + " (" + std::string(type_name) +
         ") and must have " + std::to_string(expected) + " characters (" + std::string(shape) + "), found " +
         std::to_string(id.size());
}

StructureIdCheck fail(StructureIdType type, std::string error) {
  StructureIdCheck r;
  r.type = type;
  r.error = std::move(error);
  return r;
}

StructureIdCheck check_finess(std::string_view id) {
  if (id.size() != 10) return fail(StructureIdType::finess, length_error(id, "FINESS", 10, "1 + 9-character FINESS"));
  const std::string_view finess = id.substr(1);
  // Letters occur in the département part only (2A/2B in Corsica, and others seen in real certificates,
  // e.g. 10B0152872); the remaining seven characters are digits.
  for (std::size_t i = 0; i < finess.size(); ++i) {
    const char c = finess[i];
    if (is_digit(c)) continue;
    if (i < 2 && is_upper(c)) continue;
    if (i < 2 && c >= 'a' && c <= 'z')
      return fail(StructureIdType::finess, "'" + std::string(id) + "': FINESS letters are upper case");
    return fail(StructureIdType::finess, "'" + std::string(id) +
                                             "': a FINESS has digits, with letters only in its first two characters "
                                             "(département, e.g. 2A); found '" +
                                             std::string(1, c) + "'");
  }
  StructureIdCheck r;
  r.ok = true;
  r.type = StructureIdType::finess;
  if (all_digits(finess) && !luhn_valid(finess))
    r.warning = "'" + std::string(id) + "': the FINESS check digit does not match (accepted; check the number)";
  return r;
}

}  // namespace

bool luhn_valid(std::string_view digits) {
  if (!all_digits(digits)) return false;
  int sum = 0;
  bool twice = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool rpps_valid(std::string_view rpps) { return rpps.size() == 11 && all_digits(rpps) && luhn_valid(rpps); }

StructureIdCheck check_structure_id(std::string_view id) {
  if (id.empty()) return fail(StructureIdType::siret, "the structure identifier is empty");
  for (char c : id) {
    if (is_digit(c) || is_upper(c) || (c >= 'a' && c <= 'z')) continue;
    if (c == '.' || c == '+' || c == '-' || c == ',' || c == '_')
      return fail(StructureIdType::siret,
                  "'" + std::string(id) +
                      "' looks like a number, not a structure identifier: write the "
                      "identifier's exact digits (type digit + identifier, e.g. 312345678200002)");
    return fail(StructureIdType::siret, "'" + std::string(id) + "' contains '" + std::string(1, c) +
                                            "': a structure identifier is a type digit followed by the identifier");
  }
  if (all_digits(id)) {
    // Bare national numbers, written without their type digit: name the full form. Only when the number
    // passes its own check, so that a truncated full id gets the length message of its type instead.
    if (id.size() == 14 && siret_valid(id))
      return fail(StructureIdType::siret, "'" + std::string(id) +
                                              "' is a bare SIRET (14 digits): write the full "
                                              "structure identifier '3" +
                                              std::string(id) + "' (3 + SIRET)");
    if (id.size() == 11 && luhn_valid(id))
      return fail(StructureIdType::rpps_rang,
                  "'" + std::string(id) + "' is a bare RPPS (11 digits): write the full structure identifier '4" +
                      std::string(id) + "NNN' (4 + RPPS + the 3-digit rang of the activity)");
    // The same lengths with a failing key: still most likely a bare number with a typo, unless the first
    // digit makes it a truncated full id (then the type's length message below is the better one).
    if (id.size() == 14 && id[0] != '3')
      return fail(StructureIdType::siret,
                  "'" + std::string(id) +
                      "' has 14 digits like a bare SIRET, but its "
                      "Luhn key fails (a typo?); a structure identifier is 3 + SIRET (15 digits)");
    if (id.size() == 11 && id[0] != '4')
      return fail(StructureIdType::rpps_rang,
                  "'" + std::string(id) +
                      "' has 11 digits like a bare RPPS, but its Luhn key fails (a typo?); a "
                      "structure identifier is 4 + RPPS + 3-digit rang (15 digits)");
    if (id.size() == 9 && luhn_valid(id))
      return fail(StructureIdType::siren, "'" + std::string(id) + "' is a bare 9-digit number: write '2" +
                                              std::string(id) + "' for a SIREN or '1" + std::string(id) +
                                              "' for a FINESS");
  }
  switch (id[0]) {
    case '0':
      if (id.size() != 10) return fail(StructureIdType::adeli, length_error(id, "ADELI", 10, "0 + 9-digit ADELI"));
      if (!all_digits(id))
        return fail(StructureIdType::adeli, "'" + std::string(id) + "': an ADELI number has digits only");
      return {true, StructureIdType::adeli, {}, {}};
    case '1':
      return check_finess(id);
    case '2':
      if (id.size() != 10) return fail(StructureIdType::siren, length_error(id, "SIREN", 10, "2 + 9-digit SIREN"));
      if (!all_digits(id)) return fail(StructureIdType::siren, "'" + std::string(id) + "': a SIREN has digits only");
      if (!luhn_valid(id.substr(1)))
        return fail(StructureIdType::siren, "'" + std::string(id) + "': the SIREN " + std::string(id.substr(1)) +
                                                " fails its Luhn check (a typo?)");
      return {true, StructureIdType::siren, {}, {}};
    case '3':
      if (id.size() != 15) return fail(StructureIdType::siret, length_error(id, "SIRET", 15, "3 + 14-digit SIRET"));
      if (!all_digits(id)) return fail(StructureIdType::siret, "'" + std::string(id) + "': a SIRET has digits only");
      if (!siret_valid(id.substr(1)))
        return fail(StructureIdType::siret,
                    "'" + std::string(id) + "': the SIRET " + std::string(id.substr(1)) +
                        (id.substr(1, 9) == kLaPosteSiren ? " fails La Poste's check (digit sum divisible by 5)"
                                                          : " fails its Luhn check (a typo?)"));
      return {true, StructureIdType::siret, {}, {}};
    case '4':
      if (id.size() != 15)
        return fail(StructureIdType::rpps_rang, length_error(id, "RPPS rang", 15, "4 + 11-digit RPPS + 3-digit rang"));
      if (!all_digits(id))
        return fail(StructureIdType::rpps_rang, "'" + std::string(id) + "': an RPPS rang identifier has digits only");
      if (!luhn_valid(id.substr(1, 11)))
        return fail(StructureIdType::rpps_rang, "'" + std::string(id) + "': the RPPS " + std::string(id.substr(1, 11)) +
                                                    " fails its Luhn check (a typo?)");
      return {true, StructureIdType::rpps_rang, {}, {}};
    case '8':
      if (id.size() == 12 && all_digits(id))
        return fail(StructureIdType::rpps_rang, "'" + std::string(id) +
                                                    "' is a person's identifier (8 + RPPS), "
                                                    "not a site's: write 4 + RPPS + rang for a cabinet");
      [[fallthrough]];
    default:
      return fail(StructureIdType::siret, "'" + std::string(id) + "' starts with '" + std::string(1, id[0]) +
                                              "', which is not a structure type digit (0 ADELI, 1 FINESS, "
                                              "2 SIREN, 3 SIRET, 4 RPPS rang)");
  }
}

}  // namespace orgproxy::config
