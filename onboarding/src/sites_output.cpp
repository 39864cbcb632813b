// Renderings of discovered sites.
#include "orgproxy/onboarding/sites_output.hpp"

#include <sstream>

#include <nlohmann/json.hpp>

namespace orgproxy::onboarding {
namespace {

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

/// A YAML double-quoted scalar (YAML 1.2 §7.3.1): directory text may hold ':', '#', quotes or accents.
std::string yaml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

/// Comment text kept on one line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string type_label(const DiscoveredSite& s) {
  if (s.id_type == "rpps-rang") return "RPPS rang";
  if (s.id_type == "siret") return "SIRET";
  if (s.id_type.empty()) return "?";
  return s.id_type;
}

}  // namespace

std::string render_sites_table(const DiscoveryResult& result) {
  struct Row {
    std::string cells[6];
  };
  std::vector<Row> rows;
  rows.push_back({{"SITE ID", "TYPE", "SECTOR", "NAME", "ADDRESS", "CONFIGURED"}});
  for (const DiscoveredSite& s : result.sites)
    rows.push_back({{s.structure_id.empty() ? "(" + s.directory_id + ")" : s.structure_id, type_label(s),
                     s.sector.empty() ? "-" : s.sector, s.name, join(s.address_lines, ", "),
                     s.configured ? "yes" : "no"}});
  std::size_t width[6] = {};
  // Widths in bytes: names with accents end up slightly narrower; alignment stays readable.
  for (const Row& r : rows)
    for (int i = 0; i < 6; ++i) width[i] = std::max(width[i], r.cells[i].size());
  std::ostringstream out;
  out << "Sites of professional 8" << result.rpps << " (" << result.source << "):\n";
  for (const Row& r : rows) {
    for (int i = 0; i < 6; ++i) {
      out << r.cells[i];
      if (i < 5) out << std::string(width[i] - r.cells[i].size() + 2, ' ');
    }
    out << "\n";
  }
  for (const DiscoveredSite& s : result.sites) {
    const std::string id = s.structure_id.empty() ? s.directory_id : s.structure_id;
    if (s.id_note.starts_with("bare")) out << "note: " << id << ": " << s.id_note << "\n";
    for (const std::string& w : s.warnings) out << "warning: " << id << ": " << w << "\n";
  }
  return out.str();
}

nlohmann::json sites_to_json(const DiscoveryResult& result) {
  nlohmann::json sites = nlohmann::json::array();
  for (const DiscoveredSite& s : result.sites)
    sites.push_back({{"directory_id", s.directory_id},
                     {"structure_id", s.structure_id},
                     {"id_type", s.id_type},
                     {"id_note", s.id_note},
                     {"sector", s.sector},
                     {"name", s.name},
                     {"address", s.address_lines},
                     {"departement", s.departement},
                     {"configured", s.configured},
                     {"warnings", s.warnings}});
  return {{"rpps", result.rpps}, {"source", result.source}, {"sites", sites}};
}

std::string render_tenant_stubs_yaml(const DiscoveryResult& result) {
  std::ostringstream out;
  out << "# Tenant stubs for the sites of professional 8" << result.rpps << ",\n"
      << "# from " << one_line(result.source) << ".\n"
      << "# Review each stub, save it under conf.d/ (one file per site is easiest), then:\n"
      << "#   orgproxy sites plan-413 --config FILE    (forms to have signed), order the certificates,\n"
      << "#   orgproxy keys generate --tenant ID --purpose P    (key + CSR on the token),\n"
      << "#   fill in `identities` below, install the certificates, and run `orgproxy sites inventory`.\n";
  bool any = false;
  for (const DiscoveredSite& s : result.sites) {
    if (s.configured) {
      out << "# already configured: " << s.structure_id << " (" << one_line(s.name) << ")\n";
      continue;
    }
    if (s.structure_id.empty()) {
      out << "# not recognised, left out: directory id " << yaml_quote(s.directory_id) << " ("
          << one_line(s.name) << ")";
      for (const std::string& w : s.warnings) out << "; " << one_line(w);
      out << "\n";
      continue;
    }
    if (!any) out << "tenants:\n";
    any = true;
    out << "  - id: " << yaml_quote(s.structure_id) << "  # " << (s.id_note.empty() ? type_label(s) : s.id_note)
        << "\n";
    out << "    name: " << yaml_quote(s.name.empty() ? s.structure_id : s.name) << "\n";
    if (!s.sector.empty()) out << "    sector: " << yaml_quote(s.sector) << "\n";
    if (!s.departement.empty()) out << "    departement: " << yaml_quote(s.departement) << "\n";
    if (s.id_type == "siret")
      out << "    # legal_representative: \"\"   # the company's legal representative signs its form 413\n";
    else
      out << "    responsible_rpps: " << yaml_quote(result.rpps) << "  # signs the form 413 for this site\n";
    if (!s.address_lines.empty()) out << "    # address: " << one_line(join(s.address_lines, ", ")) << "\n";
    for (const std::string& w : s.warnings) out << "    # warning: " << one_line(w) << "\n";
    out << "    # identities:   # fill in once the keys exist (orgproxy keys generate prints the key URI)\n"
        << "    #   dmp:       [{ cert: certs/" << s.structure_id << "-dmp.pem, key: \"pkcs11:...\" }]\n"
        << "    #   insi-auto: [{ cert: certs/" << s.structure_id << "-insi-auto.pem, key: \"pkcs11:...\" }]\n";
  }
  if (!any) out << "# no new site to add\n";
  return out.str();
}

}  // namespace orgproxy::onboarding
