// Forms 413 (ANS order procedure for ORG certificates): which forms to prepare for the configured sites.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "orgproxy/config/config.hpp"

namespace orgproxy::onboarding {

/// At most this many RPPS-rang identifiers fit on one form 413.
inline constexpr std::size_t kRppsRangPerForm = 4;

/// One form 413 to fill in and have signed.
struct Form413 {
  enum class Kind { rpps_rang, siret };
  Kind kind = Kind::rpps_rang;
  /// rpps_rang: the responsible professional's RPPS; siret: the company's legal representative.
  std::string signer;
  std::string siren;      ///< siret forms: the company (SIRET characters 1–9)
  unsigned part = 1;      ///< rpps_rang: this form's number among the signer's forms (1-based)
  unsigned parts = 1;     ///< rpps_rang: how many forms the signer has
  std::vector<std::string> site_ids;  ///< full structure ids, sorted
  std::vector<std::string> warnings;  ///< e.g. sites of one company naming different legal representatives
};

/// A configured site that no form covers yet.
struct UnplannedSite {
  std::string tenant_id;
  std::string sector;
  std::string reason;  ///< what is missing ("no responsible_rpps", ...)
};

struct Plan413 {
  std::vector<Form413> forms;                     ///< rpps_rang forms by signer, then siret forms by SIREN
  std::vector<UnplannedSite> missing_responsible;  ///< sites lacking responsible_rpps / legal_representative
  std::vector<UnplannedSite> not_applicable;       ///< sites neither RPPS rang nor SIRET (FINESS...)
};

/// Plans the forms from the tenants of `config`. The identifier type decides the form: `4`+RPPS+rang sites
/// (SA07/SA08 cabinets) are grouped by `responsible_rpps`, at most kRppsRangPerForm per form (5–8 sites make
/// two forms, 9 three...); `3`+SIRET sites (SA09 sociétés d'exercice) are grouped by SIREN, one form per
/// company signed by its `legal_representative`. Sites without the field are listed in
/// missing_responsible; other identifier types in not_applicable.
Plan413 plan_forms_413(const config::Config& config);

/// Human table (one line per form, then the sites left out).
std::string render_plan_table(const Plan413& plan);
/// CSV (RFC 4180): form,kind,signer,siren,part,parts,site_id — one row per site, plus rows with form
/// "missing"/"not-applicable" for the sites left out.
std::string render_plan_csv(const Plan413& plan);
/// {"forms":[...],"missing_responsible":[...],"not_applicable":[...]}.
nlohmann::json plan_to_json(const Plan413& plan);

}  // namespace orgproxy::onboarding
