// The configuration's `directory` section (settings of `orgproxy sites discover`): read, resolved, checked.
#include <gtest/gtest.h>

#include "orgproxy/config/load.hpp"

namespace cfg = orgproxy::config;

namespace {

std::string errors_of(const std::string& yaml) {
  try {
    cfg::load_config_text(yaml, "dir.yaml", "/etc/orgproxy");
  } catch (const cfg::ConfigError& e) {
    return e.what() + std::string("\n") + [&] {
      std::string all;
      for (const auto& d : e.diagnostics()) all += d.str() + "\n";
      return all;
    }();
  }
  return "";
}

}  // namespace

TEST(DirectorySettings, values_are_read_and_the_key_file_resolved_against_the_config_directory) {
  auto loaded = cfg::load_config_text("listeners: [{ name: ris, port: 0 }]\n"
                                      "directory:\n"
                                      "  source: fhir\n"
                                      "  ldap_url: ldap://annuaire.example:389\n"
                                      "  base_dn: \"o=TEST,c=fr\"\n"
                                      "  fhir_url: https://fhir.example/fhir/v2\n"
                                      "  api_key_file: secrets/esante.key\n"
                                      "  timeout: 30s\n",
                                      "dir.yaml", "/etc/orgproxy");
  const cfg::DirectorySettings& d = loaded.config->directory;
  EXPECT_EQ(d.source, "fhir");
  EXPECT_EQ(d.ldap_url, "ldap://annuaire.example:389");
  EXPECT_EQ(d.base_dn, "o=TEST,c=fr");
  EXPECT_EQ(d.fhir_url, "https://fhir.example/fhir/v2");
  EXPECT_EQ(d.api_key_file, "/etc/orgproxy/secrets/esante.key");
  EXPECT_EQ(d.timeout, std::chrono::seconds(30));
}

TEST(DirectorySettings, absent_section_leaves_the_defaults) {
  auto loaded = cfg::load_config_text("listeners: [{ name: ris, port: 0 }]\n", "dir.yaml");
  EXPECT_EQ(loaded.config->directory.source, "ldap");
  EXPECT_TRUE(loaded.config->directory.base_dn.empty());
  EXPECT_EQ(loaded.config->directory.timeout, std::chrono::seconds(10));
}

TEST(DirectorySettings, bad_values_are_errors_at_their_place) {
  const std::string head = "listeners: [{ name: ris, port: 0 }]\ndirectory:\n";
  std::string e = errors_of(head + "  ldap_url: http://annuaire.example\n");
  EXPECT_NE(e.find("dir.yaml:3:13"), std::string::npos) << e;
  EXPECT_NE(e.find("must start with ldap://"), std::string::npos) << e;
  e = errors_of(head + "  source: x500\n");
  EXPECT_NE(e.find("not a directory source"), std::string::npos) << e;
  e = errors_of(head + "  base_db: o=TEST\n");
  EXPECT_NE(e.find("unknown key 'base_db'"), std::string::npos) << e;
  e = errors_of(head + "  timeout: 10\n");
  EXPECT_NE(e.find("dir.yaml:3"), std::string::npos) << e;
  EXPECT_EQ(errors_of(head + "  ldap_url: ldaps://annuaire.example\n"), "");  // positive control
}

#include "orgproxy/config/print.hpp"

TEST(DirectorySettings, the_effective_configuration_prints_them_and_loads_back_the_same) {
  auto loaded = cfg::load_config_text("listeners: [{ name: ris, port: 0 }]\n"
                                      "directory: { source: fhir, base_dn: \"o=TEST,c=fr\", "
                                      "api_key_file: /etc/orgproxy/key, timeout: 20s }\n",
                                      "dir.yaml");
  const std::string printed = cfg::print_effective(*loaded.config);
  EXPECT_NE(printed.find("directory:"), std::string::npos) << printed;
  auto again = cfg::load_config_text(printed, "printed.yaml");
  EXPECT_TRUE(again.config->directory == loaded.config->directory) << printed;
  // Control: an absent section prints nothing.
  auto plain = cfg::load_config_text("listeners: [{ name: ris, port: 0 }]\n", "plain.yaml");
  EXPECT_EQ(cfg::print_effective(*plain.config).find("directory:"), std::string::npos);
}
