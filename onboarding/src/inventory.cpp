// The inventory: certificate files read with OpenSSL, keys looked up on the token through the keystore.
#include "orgproxy/onboarding/inventory.hpp"

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "orgproxy/keystore/key_probe.hpp"

namespace orgproxy::onboarding {
namespace {

using Clock = std::chrono::system_clock;

/// What one certificate file says.
struct CertFacts {
  bool present = false;
  std::string error;  ///< unreadable
  std::string ou;
  Clock::time_point not_before, not_after;
};

std::optional<Clock::time_point> to_time_point(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return Clock::from_time_t(timegm(&tm));
}

CertFacts read_cert(const std::string& file) {
  CertFacts facts;
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return facts;
  facts.present = true;
  keystore::BioPtr bio(BIO_new_file(file.c_str(), "r"));
  keystore::X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    facts.error = "cannot read a PEM certificate from " + file;
    return facts;
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const int pos = X509_NAME_get_index_by_NID(subject, NID_organizationalUnitName, -1);
  if (pos >= 0) {
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, pos)));
    if (len >= 0) facts.ou.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
  }
  auto nb = to_time_point(X509_get0_notBefore(cert.get()));
  auto na = to_time_point(X509_get0_notAfter(cert.get()));
  if (!nb || !na) facts.error = "unreadable validity dates in " + file;
  else facts.not_before = *nb, facts.not_after = *na;
  return facts;
}

/// Lower is better when choosing among a purpose's identities.
int rank(IdentityStatus s) {
  switch (s) {
    case IdentityStatus::ready: return 0;
    case IdentityStatus::expiring: return 1;
    case IdentityStatus::key_only: return 2;
    case IdentityStatus::mismatch: return 3;
    case IdentityStatus::expired: return 4;
    case IdentityStatus::missing: return 5;
  }
  return 6;
}

std::string keys_generate(const std::string& tenant, const std::string& purpose) {
  return "orgproxy keys generate --tenant " + tenant + " --purpose " + purpose;
}

InventoryEntry assess(const config::Tenant& tenant, const std::string& purpose, const config::IdentityRef& ref,
                      const keystore::KeyProbe& probe, const InventoryOptions& options) {
  InventoryEntry e;
  e.tenant_id = tenant.id;
  e.tenant_name = tenant.name;
  e.purpose = purpose;
  if (!probe.found) {
    e.status = IdentityStatus::missing;
    e.detail = probe.error;
    e.next_action = "generate the key and CSR (" + keys_generate(tenant.id, purpose) + "), then order the certificate";
    return e;
  }
  const CertFacts cert = read_cert(ref.cert_file);
  if (!cert.present) {
    e.status = IdentityStatus::key_only;
    e.detail = "key on the token (" + probe.where + "), no certificate at " + ref.cert_file;
    e.next_action = "install the certificate once issued: orgproxy keys install-cert --tenant " + tenant.id +
                    " --purpose " + purpose + " FILE, and save its chain (leaf + intermediate) as " + ref.cert_file;
    return e;
  }
  if (!cert.error.empty()) {
    e.status = IdentityStatus::mismatch;
    e.detail = cert.error;
    e.next_action = "replace " + ref.cert_file + " with the PEM certificate issued for this key";
    return e;
  }
  e.not_after = cert.not_after;
  e.days_left = static_cast<long>(std::chrono::floor<std::chrono::days>(cert.not_after - options.now).count());
  if (cert.ou != tenant.id) {
    e.status = IdentityStatus::mismatch;
    e.detail = ref.cert_file + ": certificate OU '" + cert.ou + "' is not the site id";
    e.next_action = "install the certificate issued for site " + tenant.id;
    return e;
  }
  if (!probe.mismatch.empty() && probe.mismatch != "?") {
    e.status = IdentityStatus::mismatch;
    e.detail = ref.cert_file + " does not belong to the key (" + probe.where + "): " + probe.mismatch;
    e.next_action = "check the key URI in the configuration, or install the certificate issued for this key";
    return e;
  }
  if (cert.not_after <= options.now) {
    e.status = IdentityStatus::expired;
    e.detail = "certificate expired (" + ref.cert_file + ")";
    e.next_action = "renew: " + keys_generate(tenant.id, purpose) + ", order, install, then remove the old one";
    return e;
  }
  if (cert.not_before > options.now) {
    e.status = IdentityStatus::key_only;
    e.detail = "certificate " + ref.cert_file + " is not valid yet";
    e.next_action = "wait for its notBefore, or keep the current certificate configured beside it";
    return e;
  }
  if (cert.not_after - options.now < options.expiring) {
    e.status = IdentityStatus::expiring;
    e.detail = "certificate expires in " + std::to_string(*e.days_left) + " days";
    e.next_action = "renew: " + keys_generate(tenant.id, purpose) + ", order, install beside the current one";
    return e;
  }
  e.status = IdentityStatus::ready;
  e.detail = probe.mismatch == "?" ? "key and certificate present (the token hides the key's public part)"
                                   : "key and certificate match";
  return e;
}

keystore::KeystoreOptions keystore_options(const config::Config& config) {
  keystore::KeystoreOptions o;
  for (const config::Pkcs11Module& m : config.pkcs11.modules) o.modules.push_back({m.name, m.path});
  o.pin_file = config.pkcs11.pin_file;
  o.allow_pin_value = config.pkcs11.allow_pin_value;
  o.allow_key_files = config.pkcs11.allow_key_files;
  o.allow_extractable = config.pkcs11.allow_extractable_keys;
  return o;
}

}  // namespace

std::string_view to_string(IdentityStatus s) {
  switch (s) {
    case IdentityStatus::missing: return "missing";
    case IdentityStatus::key_only: return "key-only";
    case IdentityStatus::ready: return "ready";
    case IdentityStatus::expiring: return "expiring";
    case IdentityStatus::expired: return "expired";
    case IdentityStatus::mismatch: return "mismatch";
  }
  return "?";
}

bool Inventory::all_ready() const {
  return std::all_of(entries.begin(), entries.end(), [](const InventoryEntry& e) { return e.status == IdentityStatus::ready; });
}

Inventory take_inventory(const config::Config& config, const InventoryOptions& options) {
  // Purposes every site needs: those of the upstreams (a site without one cannot reach that service).
  std::map<config::Purpose, std::string> needed;  // purpose → an upstream needing it
  for (const auto& [name, upstream] : config.upstreams) needed.emplace(upstream.purpose, name);

  std::vector<keystore::KeyProbeRequest> requests;
  for (const config::Tenant& t : config.tenants)
    for (const auto& [purpose, refs] : t.identities)
      for (const config::IdentityRef& ref : refs) requests.push_back({ref.key, ref.cert_file});
  const bool any_key = !requests.empty();
  std::vector<keystore::KeyProbe> probes =
      any_key ? keystore::probe_keys(keystore_options(config), requests) : std::vector<keystore::KeyProbe>{};

  Inventory inventory;
  std::size_t next = 0;
  for (const config::Tenant& t : config.tenants) {
    std::set<config::Purpose> purposes;
    for (const auto& [purpose, refs] : t.identities) purposes.insert(purpose);
    for (const auto& [purpose, upstream] : needed) purposes.insert(purpose);
    for (config::Purpose purpose : purposes) {
      const std::string name(config::to_string(purpose));
      auto it = t.identities.find(purpose);
      if (it == t.identities.end() || it->second.empty()) {
        InventoryEntry e;
        e.tenant_id = t.id;
        e.tenant_name = t.name;
        e.purpose = name;
        e.status = IdentityStatus::missing;
        e.detail = "no " + name + " identity configured (upstream " + needed[purpose] + " needs one)";
        e.next_action = "generate the key and CSR (" + keys_generate(t.id, name) + ") and add the identity";
        inventory.entries.push_back(std::move(e));
        continue;
      }
      std::optional<InventoryEntry> best;
      for (const config::IdentityRef& ref : it->second) {
        InventoryEntry e = assess(t, name, ref, probes.at(next++), options);
        if (!best || rank(e.status) < rank(best->status)) best = std::move(e);
      }
      inventory.entries.push_back(std::move(*best));
    }
  }
  return inventory;
}

std::string render_inventory_table(const Inventory& inventory) {
  std::size_t w_site = 4, w_purpose = 7;
  for (const InventoryEntry& e : inventory.entries) {
    w_site = std::max(w_site, e.tenant_id.size());
    w_purpose = std::max(w_purpose, e.purpose.size());
  }
  std::ostringstream out;
  auto pad = [](const std::string& s, std::size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
  out << pad("SITE", w_site) << "  " << pad("PURPOSE", w_purpose) << "  " << pad("STATUS", 8) << "  "
      << pad("DAYS", 5) << "  NEXT ACTION\n";
  for (const InventoryEntry& e : inventory.entries)
    out << pad(e.tenant_id, w_site) << "  " << pad(e.purpose, w_purpose) << "  "
        << pad(std::string(to_string(e.status)), 8) << "  " << pad(e.days_left ? std::to_string(*e.days_left) : "-", 5)
        << "  " << (e.next_action.empty() ? "-" : e.next_action) << "\n";
  bool header = false;
  for (const InventoryEntry& e : inventory.entries) {
    if (e.status == IdentityStatus::ready) continue;
    if (!header) out << "\nDetails:\n";
    header = true;
    out << "  " << e.tenant_id << " " << e.purpose << ": " << e.detail << "\n";
  }
  return out.str();
}

nlohmann::json inventory_to_json(const Inventory& inventory) {
  nlohmann::json entries = nlohmann::json::array();
  for (const InventoryEntry& e : inventory.entries) {
    nlohmann::json j = {{"tenant", e.tenant_id},   {"name", e.tenant_name},
                        {"purpose", e.purpose},    {"status", to_string(e.status)},
                        {"detail", e.detail},      {"next_action", e.next_action}};
    if (e.not_after) {
      const std::time_t t = Clock::to_time_t(*e.not_after);
      char buf[32];
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
      j["not_after"] = buf;
      j["days_left"] = *e.days_left;
    } else {
      j["not_after"] = nullptr;
      j["days_left"] = nullptr;
    }
    entries.push_back(std::move(j));
  }
  return {{"all_ready", inventory.all_ready()}, {"entries", entries}};
}

}  // namespace orgproxy::onboarding
