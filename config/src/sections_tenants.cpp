// tenants section: sites, their identifiers and identities.
#include <algorithm>
#include <array>
#include <cctype>

#include "orgproxy/config/identifiers.hpp"
#include "pkcs11_uri.hpp"
#include "sections.hpp"

namespace orgproxy::config::detail {
namespace {

constexpr std::array<std::string_view, 5> kPurposeNames{"dmp", "insi-auto", "insi-manu", "mssante", "vihf-sign"};

bool is_departement(std::string_view d) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (d == "2A" || d == "2B") return true;
  if (d.size() == 2 && digit(d[0]) && digit(d[1])) return d != "00" && d != "20" && d <= "95";
  if (d.size() == 3 && d.starts_with("97") && digit(d[2])) return d >= "971" && d <= "978";
  if (d.size() == 3 && d.starts_with("98") && digit(d[2])) return d >= "984" && d <= "989";
  return false;
}

void check_sector(const MapView& m, const std::string& sector, const StructureIdCheck& id) {
  if (sector.size() != 4 || !sector.starts_with("SA") || !std::isdigit(static_cast<unsigned char>(sector[2])) ||
      !std::isdigit(static_cast<unsigned char>(sector[3]))) {
    m.error_at("sector", "'" + sector + "' is not an RPPS activity sector (SAnn, e.g. SA07, SA09)");
    return;
  }
  if (!id.ok) return;
  // DOMAIN.md: cabinets libéraux (SA07/SA08) are identified by RPPS rang, sociétés d'exercice (SA09) by SIRET.
  if ((sector == "SA07" || sector == "SA08") && id.type != StructureIdType::rpps_rang)
    m.warning_at("sector", sector +
                               " (cabinet libéral) is usually identified by an RPPS rang id (4 + RPPS + "
                               "rang), not this one");
  if (sector == "SA09" && id.type != StructureIdType::siret)
    m.warning_at("sector", "SA09 (société d'exercice) is usually identified by a SIRET id (3 + SIRET)");
}

void parse_identity(const YAML::Node& item, const std::string& what, const MapView& tm, const ParseState& state,
                    std::vector<IdentityRef>& out) {
  static constexpr std::array<std::string_view, 2> kKeys{"cert", "key"};
  MapView m(item, mark_of(item, tm.file()), tm.file(), tm.diags(), what, kKeys);
  if (!m.valid()) return;
  IdentityRef ref;
  ref.mark = m.mark();
  // Without `cert`, the certificate is the one stored on the key's token (`orgproxy keys install-cert`).
  if (auto v = m.path("cert", false)) ref.cert_file = *v;
  if (auto t = m.text("key", true)) {
    const Pkcs11Settings& p11 = state.config.pkcs11;
    if (t->value.size() >= 7 && std::equal(t->value.begin(), t->value.begin() + 7,
                                           "pkcs11:", [](char a, char b) { return std::tolower(a) == b; })) {
      auto check = check_pkcs11_key_uri(t->value, p11.allow_pin_value);
      for (const auto& e : check.errors) m.error_at("key", e);
      for (const auto& w : check.warnings) m.warning_at("key", w);
      ref.key = t->value;
    } else if (p11.allow_key_files) {
      ref.key = resolve_path(t->value, m.file());
      m.warning_at("key", "a PEM key file is used instead of a PKCS#11 token (pkcs11.allow_key_files)");
      if (ref.cert_file.empty())
        m.error_at("key", "a PEM key file needs a cert: file (only a token can hold the certificate)");
    } else {
      m.error_at("key",
                 "must be a pkcs11: URI (RFC 7512), e.g. \"pkcs11:token=orgproxy;object=site-a;"
                 "type=private\"; PEM key files need pkcs11.allow_key_files: true");
    }
  }
  out.push_back(std::move(ref));
}

void parse_identities(const MapView& tm, Tenant& t, const ParseState& state) {
  const Field* f = tm.field("identities");
  if (!f) return;
  if (f->value.IsNull()) return;
  if (!f->value.IsMap()) {
    tm.error_at("identities",
                "expected a mapping of purpose → list of {cert, key}, found " + std::string(kind_of(f->value)));
    return;
  }
  std::vector<std::string> seen;
  for (auto it = f->value.begin(); it != f->value.end(); ++it) {
    const SourceMark at = mark_of(it->first, tm.file());
    if (!it->first.IsScalar()) {
      tm.diags().error(at, tm.what() + ": identities: a purpose must be a plain word");
      continue;
    }
    const std::string& name = it->first.Scalar();
    auto purpose = parse_purpose(name);
    if (!purpose) {
      tm.diags().error(at, tm.what() + ": identities: unknown purpose '" + name + "'" + hint(name, kPurposeNames));
      continue;
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      tm.diags().error(at, tm.what() + ": identities: purpose '" + name + "' is listed twice");
      continue;
    }
    seen.push_back(name);
    const std::string what = tm.what() + ": identity " + name;
    if (!expect_sequence(it->second, at, tm.file(), tm.diags(), what)) continue;
    if (it->second.size() == 0) {
      tm.diags().error(at, what + ": the list is empty");
      continue;
    }
    auto& list = t.identities[*purpose];
    for (std::size_t i = 0; i < it->second.size(); ++i)
      parse_identity(it->second[i], what + " #" + std::to_string(i + 1), tm, state, list);
  }
}

}  // namespace

void parse_tenants(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 7> kKeys{
      "id", "name", "sector", "departement", "responsible_rpps", "legal_representative", "identities"};
  const Field* f = top.field("tenants");
  if (!f) return;
  if (!expect_sequence(f->value, mark_of(f->key, top.file()), top.file(), top.diags(), "tenants")) return;
  for (std::size_t i = 0; i < f->value.size(); ++i) {
    const YAML::Node item = f->value[i];
    std::string what = "tenant #" + std::to_string(i + 1);
    if (auto n = child_text(item, "id"); !n.empty()) what = "tenant '" + n + "'";
    MapView m(item, mark_of(item, top.file()), top.file(), top.diags(), what, kKeys);
    if (!m.valid()) continue;
    Tenant t;
    t.mark = m.mark();
    StructureIdCheck id_check;
    SourceMark id_mark = m.mark();
    // The id is the scalar's exact text: `0751234567` stays "0751234567" (never a number, never octal).
    if (auto id = m.text("id", true)) {
      t.id = id->value;
      id_mark = id->mark;
      id_check = check_structure_id(id->value);
      if (!id_check.ok) m.error_at("id", id_check.error);
      if (!id_check.warning.empty()) m.warning_at("id", id_check.warning);
    }
    if (auto v = m.string("name")) t.name = *v;
    if (auto v = m.string("sector")) {
      t.sector = *v;
      check_sector(m, *v, id_check);
    }
    if (auto v = m.string("departement")) {
      if (!is_departement(*v))
        m.error_at("departement", "'" + *v +
                                      "' is not a département code (01-95, 2A, 2B, 971-978, 984-989; "
                                      "quote it to keep a leading zero visible: \"01\")");
      t.departement = *v;
    }
    if (auto v = m.string("responsible_rpps")) {
      if (v->size() == 12 && v->front() == '8' && rpps_valid(v->substr(1)))
        m.error_at("responsible_rpps",
                   "'" + *v + "' is a person identifier (8 + RPPS): write the 11-digit RPPS " + v->substr(1));
      else if (!rpps_valid(*v))
        m.error_at("responsible_rpps", "'" + *v + "' is not an RPPS number (11 digits with a valid Luhn key)");
      t.responsible_rpps = *v;
    }
    if (auto v = m.string("legal_representative")) t.legal_representative = *v;
    parse_identities(m, t, state);
    if (t.identities.empty() && m.valid() && m.field("id"))
      m.diags().warning(m.mark(), m.what() +
                                      ": no identities: every request for this site will be refused "
                                      "(403 identity_missing)");
    state.tenant_ids.push_back({t.id, id_mark});
    state.config.tenants.push_back(std::move(t));
  }
}

}  // namespace orgproxy::config::detail
