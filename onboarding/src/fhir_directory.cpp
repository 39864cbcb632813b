// Discovery through the Annuaire Santé FHIR API (R4): PractitionerRole of the professional → Organizations.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "http_get.hpp"
#include "orgproxy/onboarding/discovery.hpp"

namespace orgproxy::onboarding {
namespace {

using json = nlohmann::json;
using Kind = DiscoveryError::Kind;

// Identifier system of national person identifiers (idNatPS: 8 + RPPS), ASIP/ANS OID arc.
constexpr std::string_view kIdNatPsSystem = "urn:oid:1.2.250.1.71.4.2.1";
// Identifier system of national structure identifiers (idNatSt: type digit + identifier).
constexpr std::string_view kIdNatStSystem = "urn:oid:1.2.250.1.71.4.2.2";

std::string percent_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string read_api_key(const std::string& file) {
  if (file.empty()) return "";
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DiscoveryError(Kind::bad_input, "cannot read the API key file " + file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string key = ss.str();
  if (key.ends_with("\r\n")) key.resize(key.size() - 2);
  else if (key.ends_with("\n")) key.pop_back();
  if (key.empty()) throw DiscoveryError(Kind::bad_input, "the API key file " + file + " is empty");
  if (key.find_first_of("\r\n") != std::string::npos)
    throw DiscoveryError(Kind::bad_input, "the API key file " + file + " holds more than one line");
  return key;
}

const std::string* string_at(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

/// Codes of a CodeableConcept's codings, with their systems.
std::vector<std::pair<std::string, std::string>> codings(const json& codeable) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!codeable.is_object()) return out;
  auto it = codeable.find("coding");
  if (it == codeable.end() || !it->is_array()) return out;
  for (const json& c : *it) {
    if (!c.is_object()) continue;
    const std::string* system = string_at(c, "system");
    const std::string* code = string_at(c, "code");
    if (code) out.emplace_back(system ? *system : "", *code);
  }
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) { return haystack.find(needle) != std::string::npos; }

/// The site described by one Organization resource.
DiscoveredSite site_from_organization(const json& org) {
  std::string sector;
  if (auto it = org.find("type"); it != org.end() && it->is_array())
    for (const json& t : *it)
      for (const auto& [system, code] : codings(t))
        if (contains(system, "SecteurActivite") || (code.size() == 4 && code.starts_with("SA"))) sector = code;

  // Best identifier first: the national structure id, then SIRET, RPPS rang, FINESS.
  std::string idnat, siret, rpps_rang, finess;
  if (auto it = org.find("identifier"); it != org.end() && it->is_array()) {
    for (const json& id : *it) {
      if (!id.is_object()) continue;
      const std::string* value = string_at(id, "value");
      if (!value) continue;
      const std::string system = string_at(id, "system") ? *string_at(id, "system") : "";
      std::string type_code;
      if (auto t = id.find("type"); t != id.end())
        for (const auto& [s, code] : codings(*t))
          if (contains(s, "TypeIdentifiantStructure")) type_code = code;
      if (type_code == "40" || system == kIdNatStSystem) idnat = *value;
      else if (type_code == "3" || contains(system, "siret")) siret = *value;
      else if (type_code == "4" || contains(system, "rpps")) rpps_rang = *value;
      else if (type_code == "1" || contains(system, "finess")) finess = *value;
    }
  }
  DiscoveredSite site;
  if (!idnat.empty()) {
    site = classify_site(idnat, sector);
  } else if (!siret.empty()) {
    site = classify_site(siret, sector);
    if (site.id_type == "siret" && siret.size() == 14) site.id_note = "SIRET identifier, written 3+SIRET";
  } else if (!rpps_rang.empty()) {
    site = classify_site(rpps_rang.size() == 14 ? "4" + rpps_rang : rpps_rang, sector);
  } else if (!finess.empty()) {
    site = classify_site(finess.size() == 9 ? "1" + finess : finess, sector);
  } else {
    site = classify_site("", sector);
    site.warnings.insert(site.warnings.begin(), "the Organization has no structure identifier");
  }
  if (const std::string* name = string_at(org, "name")) site.name = *name;
  if (auto it = org.find("address"); it != org.end() && it->is_array() && !it->empty() && it->front().is_object()) {
    const json& a = it->front();
    if (auto lines = a.find("line"); lines != a.end() && lines->is_array())
      for (const json& l : *lines)
        if (l.is_string() && !l.get<std::string>().empty()) site.address_lines.push_back(l.get<std::string>());
    std::string city_line;
    if (const std::string* pc = string_at(a, "postalCode")) city_line = *pc;
    if (const std::string* city = string_at(a, "city")) city_line += (city_line.empty() ? "" : " ") + *city;
    if (!city_line.empty()) site.address_lines.push_back(city_line);
  }
  site.departement = departement_from_address(site.address_lines);
  if (site.name.empty()) site.warnings.push_back("the Organization has no name");
  return site;
}

class FhirClient {
 public:
  FhirClient(const FhirSource& source) : source_(source), key_(read_api_key(source.api_key_file)) {
    try {
      base_ = detail::parse_http_url(source.base_url);
    } catch (const std::invalid_argument& e) {
      throw DiscoveryError(Kind::bad_input, std::string("FHIR base URL: ") + e.what());
    }
    while (base_.target.size() > 1 && base_.target.back() == '/') base_.target.pop_back();
    if (base_.target == "/") base_.target.clear();
  }

  std::string where() const { return "FHIR directory " + source_.base_url; }

  /// GET of a path relative to the base URL.
  json get_relative(const std::string& path_and_query) {
    detail::HttpUrl url = base_;
    url.target = base_.target + "/" + path_and_query;
    return get(url);
  }

  /// GET of an absolute URL that must be on the configured API (the key is never sent elsewhere).
  json get_absolute(const std::string& absolute) {
    detail::HttpUrl url;
    try {
      url = detail::parse_http_url(absolute);
    } catch (const std::invalid_argument& e) {
      throw DiscoveryError(Kind::protocol, where() + ": bad link in the answer: " + e.what());
    }
    if (url.origin() != base_.origin())
      throw DiscoveryError(Kind::protocol, where() + ": a next link points to another server (" + url.origin() +
                                               "); not followed, the API key stays with the configured API");
    return get(url);
  }

 private:
  json get(const detail::HttpUrl& url) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!key_.empty()) headers.emplace_back(source_.api_key_header, key_);
    detail::HttpResponse response;
    try {
      response = detail::http_get(url, headers, source_.timeout);
    } catch (const std::system_error& e) {
      throw DiscoveryError(Kind::unreachable, where() + " is unreachable (" + e.what() +
                                                  "); check the URL, the network and any egress proxy");
    } catch (const std::exception& e) {
      throw DiscoveryError(Kind::protocol, where() + ": " + e.what());
    }
    if (response.status == 401 || response.status == 403)
      throw DiscoveryError(Kind::protocol, where() + " refused the request (HTTP " + std::to_string(response.status) +
                                               "): the API key is missing, wrong or not subscribed to this API");
    if (response.status != 200)
      throw DiscoveryError(Kind::protocol, where() + " answered HTTP " + std::to_string(response.status) + " to " +
                                               url.target.substr(0, url.target.find('?')));
    json body = json::parse(response.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      throw DiscoveryError(Kind::protocol, where() + ": the answer is not a JSON object");
    return body;
  }

  FhirSource source_;
  std::string key_;
  detail::HttpUrl base_;
};

const json& entries_of(const json& bundle) {
  static const json empty = json::array();
  auto it = bundle.find("entry");
  return it != bundle.end() && it->is_array() ? *it : empty;
}

std::string next_link(const json& bundle) {
  if (auto links = bundle.find("link"); links != bundle.end() && links->is_array())
    for (const json& l : *links)
      if (l.is_object() && string_at(l, "relation") && *string_at(l, "relation") == "next" && string_at(l, "url"))
        return *string_at(l, "url");
  return "";
}

}  // namespace

DiscoveryResult discover_fhir(std::string_view rpps, const FhirSource& source) {
  check_rpps_argument(rpps);
  FhirClient client(source);
  const std::string person = std::string(kIdNatPsSystem) + "|8" + std::string(rpps);

  std::vector<std::string> role_orgs;  // organization references, in answer order
  std::map<std::string, json> organizations;  // "Organization/<id>" → resource
  unsigned roles = 0;
  json page = client.get_relative("PractitionerRole?practitioner.identifier=" + percent_encode(person) +
                                  "&_include=PractitionerRole:organization&_count=100");
  for (unsigned pages = 1;; ++pages) {
    for (const json& entry : entries_of(page)) {
      if (!entry.is_object() || !entry.contains("resource") || !entry["resource"].is_object()) continue;
      const json& r = entry["resource"];
      const std::string* type = string_at(r, "resourceType");
      if (!type) continue;
      if (*type == "PractitionerRole") {
        ++roles;
        if (auto org = r.find("organization"); org != r.end() && org->is_object())
          if (const std::string* ref = string_at(*org, "reference")) role_orgs.push_back(*ref);
      } else if (*type == "Organization") {
        if (const std::string* id = string_at(r, "id")) organizations["Organization/" + *id] = r;
      }
    }
    const std::string next = next_link(page);
    if (next.empty()) break;
    if (pages >= source.max_pages)
      throw DiscoveryError(Kind::protocol, client.where() + ": more than " + std::to_string(source.max_pages) +
                                               " pages of PractitionerRole; refusing to go on");
    page = client.get_absolute(next);
  }

  DiscoveryResult out;
  out.rpps = std::string(rpps);
  out.source = client.where();
  if (roles == 0) {
    json practitioners = client.get_relative("Practitioner?identifier=" + percent_encode(person));
    if (entries_of(practitioners).empty())
      throw DiscoveryError(Kind::not_found, "no professional with RPPS " + out.rpps + " (8" + out.rpps + ") in " +
                                                out.source);
    throw DiscoveryError(Kind::no_activity, "professional 8" + out.rpps + " is in " + out.source +
                                                " but has no activity (no PractitionerRole); nothing to onboard");
  }
  std::set<std::string> seen;
  for (const std::string& ref : role_orgs) {
    if (!seen.insert(ref).second) continue;  // two roles in one organization: one site
    auto it = organizations.find(ref);
    if (it == organizations.end()) {
      if (!ref.starts_with("Organization/") || ref.find_first_of("?#") != std::string::npos)
        throw DiscoveryError(Kind::protocol, out.source + ": unexpected organization reference '" + ref + "'");
      it = organizations.emplace(ref, client.get_relative(ref)).first;
    }
    out.sites.push_back(site_from_organization(it->second));
  }
  if (out.sites.empty())
    throw DiscoveryError(Kind::no_activity, "professional 8" + out.rpps + " has " + std::to_string(roles) +
                                                " PractitionerRole(s) in " + out.source +
                                                " but none names an organization; nothing to onboard");
  std::stable_sort(out.sites.begin(), out.sites.end(),
                   [](const DiscoveredSite& a, const DiscoveredSite& b) { return a.directory_id < b.directory_id; });
  return out;
}

}  // namespace orgproxy::onboarding
