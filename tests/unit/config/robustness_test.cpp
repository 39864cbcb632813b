// Bad input is answered with ConfigError, never a crash or another exception type.
#include <fstream>
#include <sstream>

#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

const std::filesystem::path kExamples = std::filesystem::path(__FILE__).parent_path() / "../../../config/examples";

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Loads `text`; returns true when it loaded, false on ConfigError; any other exception fails the test.
bool loads(const std::string& text) {
  try {
    load_config_text(text, "t.yaml", kExamples);  // its include: conf.d/*.yaml resolves
    return true;
  } catch (const ConfigError& e) {
    EXPECT_FALSE(e.diagnostics().empty());
    return false;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception " << e.what() << " for:\n" << text;
    return false;
  }
}

TEST(Robustness, every_truncation_of_the_group_example_is_handled) {
  const std::string text = read(kExamples / "group.yaml");
  ASSERT_GT(text.size(), 1000u);
  EXPECT_TRUE(loads(text));  // positive control: the whole file loads
  std::size_t refused = 0;
  for (std::size_t n = 0; n < text.size(); ++n) refused += !loads(text.substr(0, n));
  EXPECT_GT(refused, text.size() / 2);
}

TEST(Robustness, byte_flips_of_the_group_example_are_handled) {
  const std::string text = read(kExamples / "group.yaml");
  for (std::size_t i = 0; i < text.size(); i += 13)
    for (char c : {'\0', '\t', ':', '-', '[', '{', '"', '\'', '&', '*', '!', '%', '\xff'}) {
      std::string mutated = text;
      mutated[i] = c;
      loads(mutated);
    }
}

TEST(Robustness, deep_nesting_is_refused_without_a_crash) {
  EXPECT_FALSE(loads("listeners: " + std::string(5000, '[')));
  EXPECT_FALSE(loads("settings: " + std::string(5000, '{')));
}

TEST(Robustness, aliases_and_tags_are_read_as_their_text) {
  auto r = load_ok(yaml(R"(
listeners: [{ name: ris, address: &lo 127.0.0.1, port: !!int 8080 }]
admin: { address: *lo, port: !!str 9090 }
tenants: [{ id: !!float 312345678200002 }]
)"));
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->admin->address, "127.0.0.1");
  EXPECT_EQ(r.config->admin->port, 9090);
  EXPECT_EQ(r.config->tenants[0].id, "312345678200002");
}

TEST(Robustness, crlf_line_ends_and_a_utf8_bom_are_accepted_with_the_same_positions) {
  std::string crlf;
  for (char c : kBase + "settings: { workers: 08 }\n") {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  auto d = load_errors("\xEF\xBB\xBF" + crlf);
  ASSERT_THAT(errors_only(d), ::testing::SizeIs(1));
  EXPECT_THAT(d, ::testing::Contains(ErrorAt(13, 22, "write 8, not 08")));
  std::string ok_text;
  for (char c : kBase) {
    if (c == '\n') ok_text += '\r';
    ok_text += c;
  }
  auto r = load_ok("\xEF\xBB\xBF" + ok_text);
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->tenants.at(0).id, "312345678200002");  // no stray '\r' in values
  EXPECT_EQ(r.config->find_upstream("dmp")->ca_file, "/etc/orgproxy/igc-sante.pem");
}

}  // namespace
}  // namespace orgproxy::config::test
