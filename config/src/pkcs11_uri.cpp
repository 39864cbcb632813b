#include "pkcs11_uri.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include "yaml_view.hpp"

namespace orgproxy::config::detail {
namespace {

constexpr std::array<std::string_view, 13> kPathAttributes{"id",
                                                           "library-description",
                                                           "library-manufacturer",
                                                           "library-version",
                                                           "manufacturer",
                                                           "model",
                                                           "object",
                                                           "serial",
                                                           "slot-description",
                                                           "slot-id",
                                                           "slot-manufacturer",
                                                           "token",
                                                           "type"};
constexpr std::array<std::string_view, 4> kQueryAttributes{"module-name", "module-path", "pin-source", "pin-value"};
constexpr std::array<std::string_view, 5> kObjectTypes{"cert", "data", "private", "public", "secret-key"};

bool unreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~';
}
bool res_avail(char c) { return std::string_view(":[]@!$'()*+,=").find(c) != std::string_view::npos; }
bool path_char(char c) { return unreserved(c) || res_avail(c) || c == '&'; }
bool query_char(char c) { return unreserved(c) || res_avail(c) || c == '/' || c == '?' || c == '|'; }
bool hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Index of the first character that is neither allowed nor a well-formed %XX escape, or npos.
std::size_t first_bad_char(std::string_view value, bool (*allowed)(char)) {
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%') {
      if (i + 2 >= value.size() || !hex(value[i + 1]) || !hex(value[i + 2])) return i;
      i += 2;
      continue;
    }
    if (!allowed(value[i])) return i;
  }
  return std::string_view::npos;
}

std::string describe(char c) {
  if (c == ' ') return "a space";
  if (static_cast<unsigned char>(c) >= 0x80) return "a non-ASCII byte";
  if (static_cast<unsigned char>(c) < 0x20) return "a control character";
  return std::string("'") + c + "'";
}

template <std::size_t N>
bool known(const std::array<std::string_view, N>& set, std::string_view name) {
  return std::find(set.begin(), set.end(), name) != set.end();
}

}  // namespace

UriCheck check_pkcs11_key_uri(std::string_view uri, bool allow_pin_value) {
  UriCheck r;
  constexpr std::string_view kScheme = "pkcs11:";
  std::string head(uri.substr(0, std::min(uri.size(), kScheme.size())));
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (head != kScheme) {
    r.errors.push_back("not a PKCS#11 URI: it must start with 'pkcs11:' (RFC 7512)");
    return r;
  }
  const std::string_view body = uri.substr(kScheme.size());
  const auto q = body.find('?');
  const std::string_view path = body.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : body.substr(q + 1);
  std::vector<std::string> seen;
  bool has_object = false;

  auto each = [&](std::string_view part, char sep, bool in_query) {
    std::size_t pos = 0;
    while (pos <= part.size()) {
      const auto end = std::min(part.find(sep, pos), part.size());
      const std::string_view attr = part.substr(pos, end - pos);
      pos = end + 1;
      if (attr.empty()) {
        if (end < part.size() || !part.empty())
          r.errors.push_back(std::string("empty attribute in the URI ") + (in_query ? "query" : "path"));
        if (end >= part.size()) break;
        continue;
      }
      const auto eq = attr.find('=');
      const std::string name(attr.substr(0, eq));
      const std::string_view value = eq == std::string_view::npos ? std::string_view{} : attr.substr(eq + 1);
      const bool is_pin = name == "pin-value";
      if (eq == std::string_view::npos) {
        r.errors.push_back("attribute '" + name + "' has no '=value'");
        continue;
      }
      if (is_pin && !in_query) {
        r.errors.push_back(
            "pin-value is in the URI path (';pin-value='): RFC 7512 allows it only in the query "
            "('?pin-value='); better, use pkcs11.pin_file");
        continue;
      }
      const bool vendor = name.starts_with("x-");
      if (!vendor) {
        if (in_query ? !known(kQueryAttributes, name) : !known(kPathAttributes, name)) {
          const bool other_side = in_query ? known(kPathAttributes, name) : known(kQueryAttributes, name);
          if (other_side)
            r.errors.push_back("attribute '" + name + "' belongs in the URI " + (in_query ? "path" : "query"));
          else
            r.errors.push_back("unknown attribute '" + name + "'" +
                               hint(name, in_query ? std::span<const std::string_view>(kQueryAttributes)
                                                   : std::span<const std::string_view>(kPathAttributes)));
          continue;
        }
      }
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
        r.errors.push_back("attribute '" + name + "' appears more than once");
        continue;
      }
      seen.push_back(name);
      if (const auto bad = first_bad_char(value, in_query ? query_char : path_char); bad != std::string_view::npos) {
        // Never quote a PIN, not even one character of it.
        if (is_pin)
          r.errors.push_back(
              "the pin-value is not well-formed: characters outside RFC 7512's set must be "
              "percent-encoded (%XX)");
        else
          r.errors.push_back(
              "attribute '" + name + "' contains " + describe(value[bad]) +
              (value[bad] == '%' ? " not followed by two hex digits" : ", which must be percent-encoded (%XX)"));
        continue;
      }
      if (is_pin && !allow_pin_value)
        r.errors.push_back(
            "pin-value in a key URI is refused unless pkcs11.allow_pin_value is true; put the PIN "
            "in pkcs11.pin_file instead");
      if (name == "slot-id")
        r.warnings.push_back(
            "slot-id names a slot by number, which changes when a token is re-initialised; "
            "name the token by label (token=) or serial (serial=) instead");
      if (name == "type" && value != "private") {
        if (known(kObjectTypes, value))
          r.errors.push_back("type=" + std::string(value) + " does not name a private key: write type=private");
        else
          r.errors.push_back("type=" + std::string(value) + " is not a PKCS#11 object type" +
                             hint(value, kObjectTypes));
      }
      if (name == "object" || name == "id") has_object = true;
    }
  };
  each(path, ';', false);
  each(query, '&', true);
  if (r.errors.empty() && !has_object)
    r.warnings.push_back(
        "the key URI names no object (no id= or object=): it matches any private key of "
        "the token");
  return r;
}

}  // namespace orgproxy::config::detail
