// The VIHF Issuer (an RFC 4514 DN string) compared with a certificate subject as parsed X.509 names.
#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <cctype>
#include <memory>
#include <optional>
#include <vector>

#include "orgproxy/daemon/vihf.hpp"

namespace orgproxy::daemon {

namespace {

struct NameDeleter {
  void operator()(X509_NAME* n) const { X509_NAME_free(n); }
};
using NamePtr = std::unique_ptr<X509_NAME, NameDeleter>;

struct Ava {
  std::string type;
  std::string value;
};
using Rdn = std::vector<Ava>;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// RFC 4514 §3 grammar: RDNs separated by ',', AVAs within one by '+', `type=value`, backslash escapes
// (a special character or two hex digits), unescaped leading/trailing spaces dropped. Hex-encoded BER
// values ('#...') are not accepted: a VIHF Issuer never uses them. nullopt on any syntax error.
std::optional<std::vector<Rdn>> parse_rfc4514(std::string_view dn) {
  std::vector<Rdn> rdns(1);
  std::size_t i = 0;
  auto skip_spaces = [&] {
    while (i < dn.size() && dn[i] == ' ') ++i;
  };
  for (;;) {
    skip_spaces();
    std::size_t eq = dn.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view type = dn.substr(i, eq - i);
    while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
    if (type.empty()) return std::nullopt;
    for (char c : type)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return std::nullopt;
    i = eq + 1;
    skip_spaces();
    if (i < dn.size() && dn[i] == '#') return std::nullopt;
    std::string value;
    std::size_t kept = 0;  // length of value up to its last escaped or non-space character
    char separator = 0;
    while (i < dn.size()) {
      char c = dn[i];
      if (c == ',' || c == '+' || c == ';') {
        separator = c == ';' ? ',' : c;
        ++i;
        break;
      }
      if (c == '\\') {
        if (i + 1 >= dn.size()) return std::nullopt;
        int h1 = hex_value(dn[i + 1]);
        int h2 = i + 2 < dn.size() ? hex_value(dn[i + 2]) : -1;
        if (h1 >= 0 && h2 >= 0) {
          value += static_cast<char>(h1 * 16 + h2);
          i += 3;
        } else {
          value += dn[i + 1];
          i += 2;
        }
        kept = value.size();
        continue;
      }
      if (c == '"' || c == '<' || c == '>' || c == '\0') return std::nullopt;
      value += c;
      if (c != ' ') kept = value.size();
      ++i;
    }
    value.resize(kept);
    rdns.back().push_back({std::string(type), std::move(value)});
    if (separator == 0) break;
    if (separator == ',') rdns.emplace_back();
  }
  return rdns;
}

// Builds the X509_NAME whose ASN.1 sequence holds `rdns` in the given order; nullptr on an unknown type
// or a value OpenSSL refuses (e.g. a country that is not two letters).
NamePtr build_name(const std::vector<Rdn>& rdns, bool reversed) {
  NamePtr name(X509_NAME_new());
  if (!name) return nullptr;
  const std::size_t n = rdns.size();
  for (std::size_t k = 0; k < n; ++k) {
    const Rdn& rdn = rdns[reversed ? n - 1 - k : k];
    for (std::size_t a = 0; a < rdn.size(); ++a) {
      const Ava& ava = rdn[a];
      // Attribute type names are case-insensitive (RFC 4514 §3); OpenSSL's short names are upper case.
      int nid = OBJ_txt2nid(ava.type.c_str());
      if (nid == NID_undef) {
        std::string upper = ava.type;
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        nid = OBJ_txt2nid(upper.c_str());
      }
      if (nid == NID_undef) return nullptr;
      if (X509_NAME_add_entry_by_NID(name.get(), nid, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(ava.value.data()),
                                     static_cast<int>(ava.value.size()), -1, a == 0 ? 0 : -1) != 1)
        return nullptr;
    }
  }
  return name;
}

}  // namespace

bool issuer_names_subject(std::string_view issuer_dn, const X509_NAME* subject) {
  if (!subject || issuer_dn.empty() || issuer_dn.size() > 4096) return false;
  auto rdns = parse_rfc4514(issuer_dn);
  if (!rdns) return false;
  for (bool reversed : {true, false}) {
    NamePtr name = build_name(*rdns, reversed);
    if (name && X509_NAME_cmp(name.get(), subject) == 0) return true;
  }
  return false;
}

}  // namespace orgproxy::daemon
