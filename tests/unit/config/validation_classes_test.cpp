// Issue 4 point 4, each class of validation error at its exact file:line:col, also where a site id is
// referenced (not only defined) and across included files; every error of every file in one report.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::SizeIs;

std::vector<Diagnostic> load_file_errors(const std::filesystem::path& p) {
  try {
    load_config(p);
  } catch (const ConfigError& e) {
    return e.diagnostics();
  }
  ADD_FAILURE() << "expected " << p << " to be refused";
  return {};
}

// kBase defines tenant 312345678200002 (3 + SIRET 12345678200002); lines 13+ reference it bare.
TEST(ValidationClasses, bare_siret_where_a_site_id_is_referenced_shows_the_full_form) {
  const std::string refs = yaml(R"(
tenant_groups:
  g: ["12345678200002"]
clients:
  - { name: ris, cidr: 127.0.0.1, tenants: ["12345678200002"] }
)");
  auto d = load_errors(kBase + refs);
  const std::string full = "write the full structure identifier '312345678200002' (3 + SIRET)";
  EXPECT_THAT(d, Contains(ErrorAt(14, 7,
                                  "tenant group 'g': no tenant with id '12345678200002' (did you mean "
                                  "'312345678200002'?); '12345678200002' is a bare SIRET")));
  EXPECT_THAT(d, Contains(ErrorAt(14, 7, full)));
  EXPECT_THAT(d, Contains(ErrorAt(16, 45, full)));
  EXPECT_THAT(errors_only(d), SizeIs(2));
  // Positive control: the full form is accepted in both places.
  std::string fixed = kBase + refs;
  for (std::size_t pos; (pos = fixed.find("\"12345678200002\"")) != std::string::npos;)
    fixed.replace(pos, 16, "\"312345678200002\"");
  auto r = load_ok(fixed);
  ASSERT_TRUE(r.config);
  EXPECT_TRUE(r.config->clients[0].allows_tenant("312345678200002"));
}

TEST(ValidationClasses, bare_rpps_in_a_source_selector_or_fixed_listener_shows_the_full_form) {
  const std::string text = yaml(R"(
listeners:
  - { name: a, port: 8080, selectors: [{ source: { "10.0.0.0/8": "98765432103" } }] }
  - { name: b, port: 8081, selectors: [fixed], tenant: "98765432103" }
upstreams: {}
tenants:
  - { id: "498765432103017", identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] } }
)");
  auto d = load_errors(text);
  const std::string full =
      "'98765432103' is a bare RPPS (11 digits): write the full structure identifier '498765432103NNN'";
  EXPECT_THAT(d, Contains(ErrorAt(2, 66, full)));
  EXPECT_THAT(d, Contains(ErrorAt(3, 56, full)));
  EXPECT_THAT(errors_only(d), SizeIs(2));
}

TEST(ValidationClasses, unknown_keys_and_sector_mismatch_in_an_included_site_file_name_that_file) {
  TempDir dir;
  const auto main = dir.write("main.yaml", yaml(R"(
listeners: [{ name: ris, port: 8080 }]
pkcs11: { pin_file: pin }
include: [conf.d/*.yaml]
)"));
  const auto site = dir.write("conf.d/site.yaml", yaml(R"(
tenants:
  - id: "312345678200002"
    secteur: SA09
    responsable_rpps: "99700270616"
    identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] }
)"));
  auto d = load_file_errors(main);
  ASSERT_THAT(d, SizeIs(2));
  EXPECT_EQ(d[0].str(),
            site.string() + ":3:5: error: tenant '312345678200002': unknown key 'secteur' (did you mean 'sector'?)");
  EXPECT_EQ(d[1].str(), site.string() +
                            ":4:5: error: tenant '312345678200002': unknown key 'responsable_rpps' (did you mean "
                            "'responsible_rpps'?)");
  // Corrected keys load; a sector that does not fit the id type is then a warning at the same file.
  dir.write("conf.d/site.yaml", yaml(R"(
tenants:
  - id: "312345678200002"
    sector: SA08
    identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] }
)"));
  LoadResult r;
  ASSERT_NO_THROW(r = load_config(main));
  ASSERT_THAT(r.warnings, SizeIs(1));
  EXPECT_EQ(r.warnings[0].mark.str(), site.string() + ":3:13");
  EXPECT_NE(r.warnings[0].message.find("SA08 (cabinet libéral) is usually identified by an RPPS rang"),
            std::string::npos);
}

TEST(ValidationClasses, errors_of_every_file_are_reported_in_one_load) {
  TempDir dir;
  const auto main = dir.write("main.yaml", yaml(R"(
listeners: [{ name: ris, port: 08080 }]
pkcs11: { pin_file: pin }
include: [conf.d/a.yaml, conf.d/b.yaml]
)"));
  const auto a = dir.write("conf.d/a.yaml", yaml(R"(
tenants:
  - { id: "312345678200003", identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] } }
  - { id: "498765432103017", identities: { dmp: [{ cert: b.pem, key: "pkcs11:token=t;object=b" }] } }
)"));
  const auto b = dir.write("conf.d/b.yaml", yaml(R"(
tenants:
  - { id: "498765432103017", identities: { dmp: [{ cert: c.pem, key: "pkcs11:token=t;object=c" }] } }
routes:
  - { prefix: /dmp, upstream: dpm }
)"));
  auto d = errors_only(load_file_errors(main));
  const auto at = [](const std::filesystem::path& f, int line, int col) {
    return f.string() + ":" + std::to_string(line) + ":" + std::to_string(col) + ": error: ";
  };
  std::vector<std::string> got;
  for (const auto& x : d) got.push_back(x.str());
  EXPECT_THAT(got, SizeIs(4));
  auto has = [&](const std::string& prefix, const std::string& text) {
    return std::any_of(got.begin(), got.end(), [&](const std::string& g) {
      return g.starts_with(prefix) && g.find(text) != std::string::npos;
    });
  };
  EXPECT_TRUE(has(at(main, 1, 32), "write 8080, not 08080")) << ::testing::PrintToString(got);
  EXPECT_TRUE(has(at(a, 2, 11), "the SIRET 12345678200003 fails its Luhn check")) << ::testing::PrintToString(got);
  EXPECT_TRUE(has(at(b, 2, 11), "tenant id '498765432103017' is defined twice: here and at " + a.string() + ":3:11"))
      << ::testing::PrintToString(got);
  EXPECT_TRUE(has(at(b, 4, 31), "no upstream named 'dpm' (no upstream is configured)"))
      << ::testing::PrintToString(got);
}

TEST(ValidationClasses, upstream_and_tenant_group_written_twice_in_one_file_name_both_places) {
  // kBase's `upstreams:` mapping gets a second `dmp:` (lines 9-13) before `routes:`.
  std::string text = kBase;
  text.insert(text.find("routes:"), yaml(R"(
  dmp:
    url: https://other.example/s
    ca_file: /etc/ca.pem
    environment: test
    purpose: dmp
)"));
  text += yaml(R"(
tenant_groups:
  g: ["312345678200002"]
  g: ["312345678200002"]
)");
  auto d = load_errors(text);
  EXPECT_THAT(d, Contains(ErrorAt(9, 3, "upstream 'dmp' is defined twice: here and at t.yaml:4:3")));
  EXPECT_THAT(d, Contains(ErrorAt(20, 3, "tenant group 'g' is defined twice: here and at t.yaml:19:3")));
  EXPECT_THAT(errors_only(d), SizeIs(2));
}

}  // namespace
}  // namespace orgproxy::config::test
