// Reading directory data into site candidates: RPPS argument, RFC 4515 escaping, postal addresses,
// structure identifiers (full or bare SIRET), sectors.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>

#include "orgproxy/config/identifiers.hpp"
#include "orgproxy/onboarding/discovery.hpp"

namespace orgproxy::onboarding {
namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string trim(std::string_view s) {
  const auto not_space = [](char c) { return !std::isspace(static_cast<unsigned char>(c)); };
  auto b = std::find_if(s.begin(), s.end(), not_space);
  auto e = std::find_if(s.rbegin(), s.rend(), not_space).base();
  return b < e ? std::string(b, e) : std::string();
}

std::string_view type_name(config::StructureIdType t) {
  switch (t) {
    case config::StructureIdType::adeli: return "adeli";
    case config::StructureIdType::finess: return "finess";
    case config::StructureIdType::siren: return "siren";
    case config::StructureIdType::siret: return "siret";
    case config::StructureIdType::rpps_rang: return "rpps-rang";
  }
  return "";
}

}  // namespace

void check_rpps_argument(std::string_view rpps) {
  const std::string shown(rpps);
  if (rpps.size() == 12 && rpps.front() == '8' && all_digits(rpps))
    throw DiscoveryError(DiscoveryError::Kind::bad_input,
                         "'" + shown + "' is a person identifier (8 + RPPS); give the RPPS itself: " +
                             shown.substr(1));
  if (!all_digits(rpps))
    throw DiscoveryError(DiscoveryError::Kind::bad_input,
                         "RPPS '" + shown + "' must be 11 decimal digits (it has a non-digit character)");
  if (rpps.size() != 11)
    throw DiscoveryError(DiscoveryError::Kind::bad_input, "RPPS '" + shown + "' must be 11 digits, not " +
                                                              std::to_string(rpps.size()));
  if (!config::rpps_valid(rpps))
    throw DiscoveryError(DiscoveryError::Kind::bad_input,
                         "RPPS '" + shown + "' has a wrong check digit (Luhn key): check for a typing error");
}

std::string ldap_filter_escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
      char buf[4];
      std::snprintf(buf, sizeof buf, "\\%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::string> split_postal_address(std::string_view value) {
  std::vector<std::string> lines;
  std::string line;
  auto flush = [&] {
    if (std::string t = trim(line); !t.empty()) lines.push_back(std::move(t));
    line.clear();
  };
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '$') {
      flush();
    } else if (c == '\\' && i + 2 < value.size()) {
      // RFC 4517 §3.3.28: "\24" is a literal '$', "\5C" (any case) a literal '\'.
      std::string_view esc = value.substr(i + 1, 2);
      if (esc == "24") {
        line += '$';
        i += 2;
      } else if (esc == "5C" || esc == "5c") {
        line += '\\';
        i += 2;
      } else {
        line += c;
      }
    } else {
      line += c;
    }
  }
  flush();
  return lines;
}

std::string departement_from_address(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    for (std::size_t i = 0; i + 5 <= line.size(); ++i) {
      if (i > 0 && std::isdigit(static_cast<unsigned char>(line[i - 1]))) continue;
      std::string_view code(line.data() + i, 5);
      if (!all_digits(code)) continue;
      if (i + 5 < line.size() && std::isdigit(static_cast<unsigned char>(line[i + 5]))) continue;
      // Only départements the configuration accepts (01–95 but 20, 2A/2B, 971–978, 984–989): Monaco's
      // 980xx or a CEDEX-like 99xxx gives no département rather than a stub the loader refuses.
      if (code.starts_with("97") || code.starts_with("98")) {
        const int d = std::stoi(std::string(code.substr(0, 3)));
        return (d >= 971 && d <= 978) || (d >= 984 && d <= 989) ? std::string(code.substr(0, 3)) : "";
      }
      if (code.starts_with("20")) return code[2] <= '1' ? "2A" : "2B";
      const int d = std::stoi(std::string(code.substr(0, 2)));
      return d >= 1 && d <= 95 ? std::string(code.substr(0, 2)) : "";
    }
  }
  return "";
}

DiscoveredSite classify_site(std::string_view directory_id, std::string_view sector) {
  DiscoveredSite site;
  site.directory_id = trim(directory_id);
  site.sector = trim(sector);
  const std::string& id = site.directory_id;
  if (id.size() == 14 && all_digits(id)) {
    // A bare SIRET: DESIGN.md lets only discovery write it in the full form.
    const std::string full = "3" + id;
    config::StructureIdCheck check = config::check_structure_id(full);
    site.id_type = "siret";
    site.id_note = "bare SIRET in directory, written 3+SIRET";
    if (check.ok) {
      site.structure_id = full;
    } else {
      site.warnings.push_back("directory id '" + id + "' looks like a bare SIRET but " + check.error);
    }
  } else {
    config::StructureIdCheck check = config::check_structure_id(id);
    if (check.ok) {
      site.structure_id = id;
      site.id_type = std::string(type_name(check.type));
      site.id_note = check.type == config::StructureIdType::siret ? "prefixed identifier (3+SIRET)"
                     : check.type == config::StructureIdType::rpps_rang ? "RPPS rang identifier (4+RPPS+rang)"
                                                                         : "prefixed identifier";
      if (!check.warning.empty()) site.warnings.push_back(check.warning);
    } else {
      site.warnings.push_back("directory id '" + id + "' is not a structure identifier: " + check.error);
    }
  }
  if (!site.structure_id.empty()) {
    if ((site.sector == "SA07" || site.sector == "SA08") && site.id_type != "rpps-rang")
      site.warnings.push_back(site.sector + " (cabinet libéral) is normally identified by an RPPS rang (4+RPPS+rang)");
    if (site.sector == "SA09" && site.id_type != "siret")
      site.warnings.push_back("SA09 (société d'exercice) is normally identified by a SIRET (3+SIRET)");
  }
  if (site.sector.empty()) site.warnings.push_back("no activity sector (sectActRPPS) in the directory");
  return site;
}

void mark_configured(DiscoveryResult& result, const config::Config& config) {
  for (DiscoveredSite& site : result.sites)
    site.configured = !site.structure_id.empty() && config.find_tenant(site.structure_id) != nullptr;
}

}  // namespace orgproxy::onboarding
