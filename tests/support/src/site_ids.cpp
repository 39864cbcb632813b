#include "orgproxy/testkit/site_ids.hpp"

#include <stdexcept>

namespace orgproxy::testkit {

char luhn_check_digit(std::string_view digits) {
  // Doubling starts at the rightmost digit of the payload, since the check digit will follow it.
  int sum = 0;
  bool doubled = true;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (*it < '0' || *it > '9') throw std::invalid_argument("luhn_check_digit: not a digit string");
    int d = *it - '0';
    if (doubled) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    doubled = !doubled;
  }
  return static_cast<char>('0' + (10 - sum % 10) % 10);
}

bool luhn_ok(std::string_view digits) {
  if (digits.size() < 2) return false;
  for (char c : digits)
    if (c < '0' || c > '9') return false;
  return luhn_check_digit(digits.substr(0, digits.size() - 1)) == digits.back();
}

std::string site_id_siret(std::string_view first13) {
  if (first13.size() != 13) throw std::invalid_argument("site_id_siret: 13 digits expected");
  return "3" + std::string(first13) + luhn_check_digit(first13);
}

std::string site_id_rpps_rang(std::string_view rpps10, std::string_view rang) {
  if (rpps10.size() != 10 || rang.size() != 3) throw std::invalid_argument("site_id_rpps_rang: 10 + 3 digits");
  for (char c : rang)
    if (c < '0' || c > '9') throw std::invalid_argument("site_id_rpps_rang: rang must be digits");
  return "4" + std::string(rpps10) + luhn_check_digit(rpps10) + std::string(rang);
}

std::string site_c() { return site_id_rpps_rang("1002345678", "001"); }

}  // namespace orgproxy::testkit
