// TEST vs production IGC Santé PKI, from an issuer DN string (see pki_environment.hpp).
#include "orgproxy/keystore/pki_environment.hpp"

#include <cctype>
#include <vector>

namespace orgproxy::keystore {
namespace {

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(' ') - first + 1);
}

bool is_cn(std::string_view name) {
  return name.size() == 2 && std::tolower(static_cast<unsigned char>(name[0])) == 'c' &&
         std::tolower(static_cast<unsigned char>(name[1])) == 'n';
}

// Values of the CN attributes of `dn`. Separators: ',' and ';' and '+' (RFC 4514), or '/' for the one-line
// form (which starts with '/'). A backslash escapes the next character (RFC 4514 §2.4); "\XX" hex pairs
// are kept as written, they never spell the ASCII prefix we look for.
std::vector<std::string> cn_values(std::string_view dn) {
  const bool oneline = !dn.empty() && dn.front() == '/';
  std::vector<std::string> out;
  std::string name, value;
  bool in_value = false;
  auto flush = [&] {
    if (in_value && is_cn(trim(name))) out.push_back(trim(value));
    name.clear();
    value.clear();
    in_value = false;
  };
  for (std::size_t i = oneline ? 1 : 0; i < dn.size(); ++i) {
    const char c = dn[i];
    if (c == '\\' && i + 1 < dn.size()) {
      (in_value ? value : name) += dn[++i];
      continue;
    }
    const bool separator = oneline ? c == '/' : (c == ',' || c == ';' || c == '+');
    if (separator) {
      flush();
    } else if (c == '=' && !in_value) {
      in_value = true;
    } else {
      (in_value ? value : name) += c;
    }
  }
  flush();
  return out;
}

}  // namespace

std::string_view to_string(PkiEnvironment e) { return e == PkiEnvironment::test ? "test" : "production"; }

PkiEnvironment pki_environment_of_issuer(std::string_view issuer_dn) {
  for (const auto& cn : cn_values(issuer_dn))
    if (cn.starts_with("TEST ")) return PkiEnvironment::test;
  return PkiEnvironment::production;
}

std::string check_pki_environment(PkiEnvironment upstream_environment, std::string_view issuer_dn) {
  const PkiEnvironment cert = pki_environment_of_issuer(issuer_dn);
  if (cert == upstream_environment) return {};
  return "certificate from the " + std::string(cert == PkiEnvironment::test ? "TEST" : "production") +
         " IGC Santé PKI (issuer " + std::string(issuer_dn) + ") used for a " +
         std::string(to_string(upstream_environment)) + " upstream: test and production trust are never mixed";
}

}  // namespace orgproxy::keystore
