// A conf.d of many sites, one file each: glob order, positions in each file, and the errors of several
// files (syntax, not a file, duplicate id across files) in one report, in file order.
#include "config_test_util.hpp"
#include "orgproxy/config/identifiers.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::SizeIs;

// "3" + SIRET with SIREN 7<n padded to 7> + key and NIC 0001 + key.
std::string siret_site(unsigned n) {
  auto key = [](const std::string& digits) {
    for (char k = '0'; k <= '9'; ++k)
      if (luhn_valid(digits + k)) return k;
    return '?';
  };
  std::string siren8 = std::to_string(n);
  siren8 = "7" + std::string(7 - siren8.size(), '0') + siren8;
  const std::string siret13 = siren8 + key(siren8) + "0001";
  return "3" + siret13 + key(siret13);
}

std::string site_file(const std::string& id) {
  return "tenants:\n  - id: \"" + id + "\"\n    identities: { dmp: [{ cert: " + id +
         ".pem, key: \"pkcs11:token=t;object=" + id + "\" }] }\n";
}

constexpr unsigned kSites = 60;

std::filesystem::path write_world(const TempDir& dir) {
  for (unsigned i = 0; i < kSites; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "conf.d/site-%03u.yaml", i);
    dir.write(name, site_file(siret_site(i)));
  }
  return dir.write("main.yaml",
                   "listeners: [{ name: ris, port: 8080 }]\npkcs11: { pin_file: pin }\n"
                   "include: [conf.d/*.yaml]\n");
}

TEST(IncludeScale, many_site_files_load_in_glob_order_with_paths_relative_to_each) {
  TempDir dir;
  const auto main = write_world(dir);
  LoadResult r;
  ASSERT_NO_THROW(r = load_config(main));
  ASSERT_THAT(r.config->tenants, SizeIs(kSites));
  for (unsigned i = 0; i < kSites; ++i) {
    const Tenant& t = r.config->tenants[i];
    EXPECT_EQ(t.id, siret_site(i));
    char file[32];
    std::snprintf(file, sizeof file, "conf.d/site-%03u.yaml", i);
    EXPECT_EQ(t.mark.str(), (dir.path() / file).string() + ":2:5");
    EXPECT_EQ(t.identities.at(Purpose::dmp)[0].cert_file, (dir.path() / "conf.d" / (t.id + ".pem")).string());
  }
  EXPECT_THAT(r.warnings, SizeIs(0));
}

TEST(IncludeScale, errors_among_many_site_files_are_reported_in_file_order_with_their_position) {
  TempDir dir;
  const auto main = write_world(dir);
  // site-010: a YAML syntax error; site-041: the id of site-007; site-050: unreadable as a file (a directory).
  const auto broken = dir.write("conf.d/site-010.yaml", "tenants:\n  - { id: \"" + siret_site(10) + "\"\n");
  const auto dup = dir.write("conf.d/site-041.yaml", site_file(siret_site(7)));
  std::filesystem::remove(dir.path() / "conf.d/site-050.yaml");
  std::filesystem::create_directory(dir.path() / "conf.d/site-050.yaml");
  std::vector<Diagnostic> d;
  try {
    load_config(main);
    FAIL() << "expected errors";
  } catch (const ConfigError& e) {
    d = e.diagnostics();
  }
  ASSERT_THAT(d, SizeIs(3)) << ::testing::PrintToString(d);
  EXPECT_EQ(d[0].mark.str(), broken.string() + ":2:5");  // the '{' left open, not the end of the file
  EXPECT_NE(d[0].message.find("YAML syntax error"), std::string::npos) << d[0].str();
  EXPECT_EQ(d[1].mark.str(), main.string() + ":3:11");
  EXPECT_NE(d[1].message.find("site-050.yaml' is not a regular file"), std::string::npos) << d[1].str();
  EXPECT_EQ(d[2].str(), dup.string() + ":2:9: error: tenant id '" + siret_site(7) + "' is defined twice: here and at " +
                            (dir.path() / "conf.d/site-007.yaml").string() + ":2:9");
}

}  // namespace
}  // namespace orgproxy::config::test
