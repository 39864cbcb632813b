// Form 413 planning: grouping rules and the three renderings.
#include "orgproxy/onboarding/plan413.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "orgproxy/config/identifiers.hpp"

namespace orgproxy::onboarding {
namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string_view kind_name(Form413::Kind k) { return k == Form413::Kind::rpps_rang ? "rpps-rang" : "siret"; }

}  // namespace

Plan413 plan_forms_413(const config::Config& config) {
  Plan413 plan;
  std::map<std::string, std::vector<std::string>> by_responsible;  // RPPS → site ids
  struct Company {
    std::vector<std::string> sites;
    std::map<std::string, std::vector<std::string>> representatives;  // name → sites naming it
  };
  std::map<std::string, Company> by_siren;
  for (const config::Tenant& t : config.tenants) {
    const config::StructureIdCheck check = config::check_structure_id(t.id);
    if (check.ok && check.type == config::StructureIdType::rpps_rang) {
      if (t.responsible_rpps.empty())
        plan.missing_responsible.push_back({t.id, t.sector, "no responsible_rpps (the professional who signs the form)"});
      else
        by_responsible[t.responsible_rpps].push_back(t.id);
    } else if (check.ok && check.type == config::StructureIdType::siret) {
      if (t.legal_representative.empty()) {
        plan.missing_responsible.push_back({t.id, t.sector, "no legal_representative (signs the company's form)"});
      } else {
        Company& c = by_siren[t.id.substr(1, 9)];
        c.sites.push_back(t.id);
        c.representatives[t.legal_representative].push_back(t.id);
      }
    } else {
      plan.not_applicable.push_back(
          {t.id, t.sector, "identifier type is neither RPPS rang (4) nor SIRET (3): not ordered with a form 413"});
    }
  }
  for (auto& [rpps, sites] : by_responsible) {
    std::sort(sites.begin(), sites.end());
    const unsigned parts = static_cast<unsigned>((sites.size() + kRppsRangPerForm - 1) / kRppsRangPerForm);
    for (unsigned part = 0; part < parts; ++part) {
      Form413 f;
      f.kind = Form413::Kind::rpps_rang;
      f.signer = rpps;
      f.part = part + 1;
      f.parts = parts;
      const auto begin = sites.begin() + static_cast<std::ptrdiff_t>(part * kRppsRangPerForm);
      const auto end = sites.begin() + static_cast<std::ptrdiff_t>(std::min(sites.size(), (part + 1) * kRppsRangPerForm));
      f.site_ids.assign(begin, end);
      plan.forms.push_back(std::move(f));
    }
  }
  for (auto& [siren, company] : by_siren) {
    Form413 f;
    f.kind = Form413::Kind::siret;
    f.siren = siren;
    f.site_ids = company.sites;
    std::sort(f.site_ids.begin(), f.site_ids.end());
    // The representative most sites name signs; a disagreement needs a human decision, so it is said.
    auto best = std::max_element(company.representatives.begin(), company.representatives.end(),
                                 [](const auto& a, const auto& b) { return a.second.size() < b.second.size(); });
    f.signer = best->first;
    if (company.representatives.size() > 1) {
      std::string names;
      for (const auto& [name, sites] : company.representatives) names += (names.empty() ? "" : ", ") + name;
      f.warnings.push_back("the sites of SIREN " + siren + " name " + std::to_string(company.representatives.size()) +
                           " legal representatives (" + names + "); one form has one signer: fix the configuration");
    }
    plan.forms.push_back(std::move(f));
  }
  return plan;
}

std::string render_plan_table(const Plan413& plan) {
  std::ostringstream out;
  if (plan.forms.empty()) out << "No form 413 to prepare.\n";
  unsigned n = 0;
  for (const Form413& f : plan.forms) {
    out << "Form " << ++n << " (" << kind_name(f.kind) << "): ";
    if (f.kind == Form413::Kind::rpps_rang)
      out << "signed by RPPS " << f.signer << ", form " << f.part << "/" << f.parts << "\n";
    else
      out << "company SIREN " << f.siren << ", signed by " << f.signer << "\n";
    for (const std::string& id : f.site_ids) out << "    " << id << "\n";
    for (const std::string& w : f.warnings) out << "    warning: " << w << "\n";
  }
  if (!plan.missing_responsible.empty()) {
    out << "Sites lacking a responsible professional (" << plan.missing_responsible.size() << "):\n";
    for (const UnplannedSite& s : plan.missing_responsible)
      out << "    " << s.tenant_id << (s.sector.empty() ? "" : " " + s.sector) << ": " << s.reason << "\n";
  }
  if (!plan.not_applicable.empty()) {
    out << "Sites not ordered with a form 413 (" << plan.not_applicable.size() << "):\n";
    for (const UnplannedSite& s : plan.not_applicable) out << "    " << s.tenant_id << ": " << s.reason << "\n";
  }
  return out.str();
}

std::string render_plan_csv(const Plan413& plan) {
  std::ostringstream out;
  out << "form,kind,signer,siren,part,parts,site_id\r\n";
  unsigned n = 0;
  for (const Form413& f : plan.forms) {
    ++n;
    for (const std::string& id : f.site_ids)
      out << n << ',' << kind_name(f.kind) << ',' << csv_field(f.signer) << ',' << f.siren << ',' << f.part << ','
          << f.parts << ',' << id << "\r\n";
  }
  for (const UnplannedSite& s : plan.missing_responsible) out << "missing,,,,,," << s.tenant_id << "\r\n";
  for (const UnplannedSite& s : plan.not_applicable) out << "not-applicable,,,,,," << s.tenant_id << "\r\n";
  return out.str();
}

nlohmann::json plan_to_json(const Plan413& plan) {
  nlohmann::json forms = nlohmann::json::array();
  for (const Form413& f : plan.forms) {
    nlohmann::json j = {{"kind", kind_name(f.kind)}, {"signer", f.signer}, {"sites", f.site_ids},
                        {"warnings", f.warnings}};
    if (f.kind == Form413::Kind::siret) j["siren"] = f.siren;
    else j["part"] = f.part, j["parts"] = f.parts;
    forms.push_back(std::move(j));
  }
  auto unplanned = [](const std::vector<UnplannedSite>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const UnplannedSite& s : v) a.push_back({{"tenant", s.tenant_id}, {"sector", s.sector}, {"reason", s.reason}});
    return a;
  };
  return {{"forms", forms},
          {"missing_responsible", unplanned(plan.missing_responsible)},
          {"not_applicable", unplanned(plan.not_applicable)}};
}

}  // namespace orgproxy::onboarding
