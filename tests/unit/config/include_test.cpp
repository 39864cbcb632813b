// include: files and globs relative to the including file, merge, restrictions, cycles.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::SizeIs;

const std::string kMain = yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
pkcs11: { pin_file: pin }
include: [conf.d/*.yaml]
)");

const std::string kSiteA = yaml(R"(
tenants:
  - id: "312345678200002"
    identities: { dmp: [{ cert: certs/a.pem, key: "pkcs11:token=t;object=a" }] }
)");

const std::string kSiteB = yaml(R"(
upstreams:
  dmp: { url: "https://d.example/s", ca_file: ../ca/igc.pem, environment: test, purpose: dmp }
routes:
  - { prefix: /dmp, upstream: dmp }
tenants:
  - id: "498765432103017"
    identities: { dmp: [{ cert: certs/b.pem, key: "pkcs11:token=t;object=b" }] }
)");

std::vector<Diagnostic> load_file_errors(const std::filesystem::path& p) {
  try {
    load_config(p);
  } catch (const ConfigError& e) {
    return e.diagnostics();
  }
  ADD_FAILURE() << "expected " << p << " to be refused";
  return {};
}

TEST(Include, glob_merges_tenants_upstreams_and_routes_with_paths_relative_to_each_file) {
  TempDir dir;
  const auto main = dir.write("main.yaml", kMain);
  dir.write("conf.d/a.yaml", kSiteA);
  dir.write("conf.d/b.yaml", kSiteB);
  dir.write("conf.d/notes.txt", "not yaml: [");
  auto r = load_config(main);
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  ASSERT_THAT(c.tenants, SizeIs(2));
  EXPECT_EQ(c.tenants[0].id, "312345678200002");  // glob order: a.yaml before b.yaml
  EXPECT_EQ(c.tenants[1].id, "498765432103017");
  EXPECT_EQ(c.tenants[0].identities.at(Purpose::dmp)[0].cert_file, (dir.path() / "conf.d/certs/a.pem").string());
  EXPECT_EQ(c.find_upstream("dmp")->ca_file, (dir.path() / "ca/igc.pem").string());
  EXPECT_EQ(c.pkcs11.pin_file, (dir.path() / "pin").string());
  ASSERT_NE(c.match_route("/dmp/x", ""), nullptr);
  EXPECT_EQ(c.tenants[1].mark.str(), (dir.path() / "conf.d/b.yaml").string() + ":6:5");
}

TEST(Include, glob_matching_nothing_is_a_warning) {
  TempDir dir;
  const auto main = dir.write("main.yaml", kMain);
  auto r = load_config(main);
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.warnings, Contains(WarningAt(3, 11, "'conf.d/*.yaml' matches no file")));
}

TEST(Include, missing_plain_file_is_an_error_at_the_include) {
  TempDir dir;
  const auto main = dir.write("main.yaml", kMain + "  # comment\n");
  dir.write("main2.yaml", "listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]\ninclude:\n  - sites/a.yaml\n");
  auto d = load_file_errors(dir.path() / "main2.yaml");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_EQ(d[0].mark.str(), (dir.path() / "main2.yaml").string() + ":3:5");
  EXPECT_THAT(d[0].message, HasSubstr("cannot read configuration file"));
  // Positive control: once the file exists the configuration loads.
  dir.write("sites/a.yaml", kSiteA);
  EXPECT_TRUE(load_config(dir.path() / "main2.yaml").config);
}

TEST(Include, included_file_may_only_hold_tenants_upstreams_routes_and_include) {
  TempDir dir;
  const auto main = dir.write("main.yaml", kMain);
  dir.write("conf.d/a.yaml", kSiteA + "settings: { workers: 2 }\nlisteners: []\n");
  auto d = load_file_errors(main);
  const std::string a = (dir.path() / "conf.d/a.yaml").string();
  ASSERT_THAT(errors_only(d), SizeIs(2));
  EXPECT_EQ(d[0].mark.str(), a + ":4:1");
  EXPECT_THAT(d[0].message, HasSubstr("'settings' is only allowed in the main configuration file"));
  EXPECT_EQ(d[1].mark.str(), a + ":5:1");
}

TEST(Include, cycle_is_an_error) {
  TempDir dir;
  const auto main =
      dir.write("main.yaml", "listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]\ninclude: [a.yaml]\n");
  dir.write("a.yaml", "include: [b.yaml]\n");
  dir.write("b.yaml", "include: [a.yaml]\n");
  auto d = load_file_errors(main);
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_EQ(d[0].mark.str(), (dir.path() / "b.yaml").string() + ":1:11");
  // Control: breaking the cycle makes the chain load.
  dir.write("b.yaml", "tenants: []\n");
  EXPECT_TRUE(load_config(main).config);
  EXPECT_THAT(d[0].message, HasSubstr("include cycle"));
}

TEST(Include, including_the_main_file_is_a_cycle) {
  TempDir dir;
  const auto main =
      dir.write("main.yaml", "listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]\ninclude: [./main.yaml]\n");
  auto d = load_file_errors(main);
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d[0].message, HasSubstr("include cycle"));
}

TEST(Include, duplicate_tenant_across_files_names_both_files) {
  TempDir dir;
  const auto main = dir.write("main.yaml", kMain);
  dir.write("conf.d/a.yaml", kSiteA);
  dir.write("conf.d/c.yaml", kSiteA);
  auto d = load_file_errors(main);
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_EQ(d[0].mark.str(), (dir.path() / "conf.d/c.yaml").string() + ":2:9");
  EXPECT_THAT(d[0].message,
              HasSubstr("is defined twice: here and at " + (dir.path() / "conf.d/a.yaml").string() + ":2:9"));
}

TEST(Include, duplicate_upstream_across_files_names_both_files) {
  TempDir dir;
  const auto main = dir.write("main.yaml", kMain);
  dir.write("conf.d/b.yaml", kSiteB);
  dir.write("conf.d/c.yaml",
            "upstreams:\n  dmp: { url: \"https://x.example\", ca_file: c, environment: test, purpose: dmp }\n");
  auto d = load_file_errors(main);
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_EQ(d[0].mark.str(), (dir.path() / "conf.d/c.yaml").string() + ":2:3");
  EXPECT_THAT(d[0].message, HasSubstr("upstream 'dmp' is defined twice"));
}

TEST(Include, syntax_error_in_an_included_file_names_that_file) {
  TempDir dir;
  const auto main = dir.write("main.yaml", kMain);
  dir.write("conf.d/a.yaml", "tenants:\n  - { id: \"312345678200002\"\n");
  auto d = load_file_errors(main);
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_EQ(d[0].mark.file, (dir.path() / "conf.d/a.yaml").string());
  EXPECT_THAT(d[0].message, HasSubstr("YAML syntax error"));
}

TEST(Include, same_file_included_twice_is_an_error) {
  TempDir dir;
  dir.write("conf.d/a.yaml", kSiteA);
  const auto main2 = dir.write("main2.yaml",
                               "listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]\n"
                               "include: [conf.d/*.yaml, conf.d/a.yaml]\n");
  auto d2 = load_file_errors(main2);
  ASSERT_THAT(errors_only(d2), SizeIs(1));
  EXPECT_THAT(d2[0].message, HasSubstr("is already included at " + main2.string() + ":2:11"));
}

TEST(Include, nested_include_resolves_relative_to_the_including_file) {
  TempDir dir;
  const auto main =
      dir.write("main.yaml", "listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]\ninclude: [sites/all.yaml]\n");
  dir.write("sites/all.yaml", "include: [\"a/*.yaml\"]\n");
  dir.write("sites/a/one.yaml", kSiteA);
  auto r = load_config(main);
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->tenants.at(0).identities.at(Purpose::dmp)[0].cert_file,
            (dir.path() / "sites/a/certs/a.pem").string());
}

}  // namespace
}  // namespace orgproxy::config::test
