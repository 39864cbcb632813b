// Discovery through the LDAP health directory (OpenLDAP libldap, LDAPv3, anonymous simple bind).
#include <algorithm>
#include <memory>

#include <ldap.h>

#include "orgproxy/onboarding/discovery.hpp"

namespace orgproxy::onboarding {
namespace {

struct LdapUnbind {
  void operator()(LDAP* ld) const noexcept { ldap_unbind_ext_s(ld, nullptr, nullptr); }
};
struct LdapMsgFree {
  void operator()(LDAPMessage* m) const noexcept { ldap_msgfree(m); }
};
struct BervalsFree {
  void operator()(berval** v) const noexcept { ldap_value_free_len(v); }
};
using LdapHandle = std::unique_ptr<LDAP, LdapUnbind>;
using LdapMessagePtr = std::unique_ptr<LDAPMessage, LdapMsgFree>;
using BervalsPtr = std::unique_ptr<berval*, BervalsFree>;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

/// Every value of `attribute` in `entry` (the attribute type compared case-insensitively by libldap).
std::vector<std::string> values_of(LDAP* ld, LDAPMessage* entry, const char* attribute) {
  std::vector<std::string> out;
  BervalsPtr values(ldap_get_values_len(ld, entry, attribute));
  if (!values) return out;
  for (berval** v = values.get(); *v != nullptr; ++v) out.emplace_back((*v)->bv_val, (*v)->bv_len);
  return out;
}

[[noreturn]] void fail(int rc, const std::string& where, const std::string& doing) {
  using Kind = DiscoveryError::Kind;
  const std::string reason = ldap_err2string(rc);
  if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT || rc == LDAP_TIMELIMIT_EXCEEDED)
    throw DiscoveryError(Kind::unreachable, "directory " + where + " is unreachable (" + doing + ": " + reason +
                                                "); check the URL, the network and the directory server");
  if (rc == LDAP_NO_SUCH_OBJECT)
    throw DiscoveryError(Kind::protocol, "directory " + where + ": the base DN does not exist (" + reason +
                                             "); check the base DN setting");
  throw DiscoveryError(Kind::protocol, "directory " + where + ": " + doing + " failed: " + reason);
}

}  // namespace

DiscoveryResult discover_ldap(std::string_view rpps, const LdapSource& source) {
  using Kind = DiscoveryError::Kind;
  check_rpps_argument(rpps);
  const std::string where = source.url + " (base '" + source.base_dn + "')";
  if (!source.url.starts_with("ldap://") && !source.url.starts_with("ldaps://"))
    throw DiscoveryError(Kind::bad_input, "directory URL '" + source.url + "' must start with ldap:// or ldaps://");
  if (source.base_dn.empty())
    throw DiscoveryError(Kind::bad_input, "no LDAP base DN: give --base-dn or directory.base_dn in the configuration");

  LDAP* raw = nullptr;
  if (int rc = ldap_initialize(&raw, source.url.c_str()); rc != LDAP_SUCCESS) {
    if (raw) ldap_unbind_ext_s(raw, nullptr, nullptr);
    throw DiscoveryError(Kind::bad_input, "directory URL '" + source.url + "' is not usable: " + ldap_err2string(rc));
  }
  LdapHandle ld(raw);
  const int version = LDAP_VERSION3;
  ldap_set_option(ld.get(), LDAP_OPT_PROTOCOL_VERSION, &version);
  // Referrals would send an anonymous search to a server nobody configured.
  ldap_set_option(ld.get(), LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
  timeval tv = to_timeval(source.timeout);
  ldap_set_option(ld.get(), LDAP_OPT_NETWORK_TIMEOUT, &tv);
  ldap_set_option(ld.get(), LDAP_OPT_TIMEOUT, &tv);

  berval anonymous{0, nullptr};
  if (int rc = ldap_sasl_bind_s(ld.get(), nullptr, LDAP_SASL_SIMPLE, &anonymous, nullptr, nullptr, nullptr);
      rc != LDAP_SUCCESS)
    fail(rc, where, "anonymous bind");

  const std::string filter = "(cn=8" + ldap_filter_escape(rpps) + ")";
  char attr_ou[] = "ou", attr_name[] = "raisonSociale", attr_address[] = "postalAddress", attr_sector[] = "sectActRPPS";
  char* attributes[] = {attr_ou, attr_name, attr_address, attr_sector, nullptr};
  LDAPMessage* raw_result = nullptr;
  int rc = ldap_search_ext_s(ld.get(), source.base_dn.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), attributes, 0,
                             nullptr, nullptr, &tv, 1000, &raw_result);
  LdapMessagePtr result(raw_result);
  if (rc != LDAP_SUCCESS) fail(rc, where, "search " + filter);

  DiscoveryResult out;
  out.rpps = std::string(rpps);
  out.source = where;
  int entries = 0;
  for (LDAPMessage* e = ldap_first_entry(ld.get(), result.get()); e != nullptr; e = ldap_next_entry(ld.get(), e)) {
    ++entries;
    std::vector<std::string> ous = values_of(ld.get(), e, "ou");
    if (ous.empty()) continue;  // the professional's own entry: not an activity
    std::vector<std::string> sectors = values_of(ld.get(), e, "sectActRPPS");
    DiscoveredSite site = classify_site(ous.front(), sectors.empty() ? "" : sectors.front());
    if (ous.size() > 1) site.warnings.push_back("the activity has " + std::to_string(ous.size()) + " ou values; the first is used");
    if (std::vector<std::string> names = values_of(ld.get(), e, "raisonSociale"); !names.empty()) site.name = names.front();
    if (std::vector<std::string> addr = values_of(ld.get(), e, "postalAddress"); !addr.empty())
      site.address_lines = split_postal_address(addr.front());
    site.departement = departement_from_address(site.address_lines);
    if (site.name.empty()) site.warnings.push_back("no raisonSociale in the directory");
    out.sites.push_back(std::move(site));
  }
  if (entries == 0)
    throw DiscoveryError(Kind::not_found, "no professional with RPPS " + out.rpps + " (cn=8" + out.rpps + ") in " + where);
  if (out.sites.empty())
    throw DiscoveryError(Kind::no_activity, "professional 8" + out.rpps + " is in " + where +
                                                " but has no activity (no site with an ou); nothing to onboard");
  std::stable_sort(out.sites.begin(), out.sites.end(),
                   [](const DiscoveredSite& a, const DiscoveredSite& b) { return a.directory_id < b.directory_id; });
  return out;
}

}  // namespace orgproxy::onboarding
