// The shipped examples pass `orgproxy check-config --offline`, run as the real binary, the way an
// operator checks a configuration before a reload (issue 4 point 6).
#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "config_test_util.hpp"
#include "orgproxy/testkit/child_process.hpp"

namespace orgproxy::config::test {
namespace {

const std::filesystem::path kExamples = std::filesystem::path(ORGPROXY_SOURCE_DIR) / "config/examples";
constexpr auto kTimeout = std::chrono::seconds(120);  // generous: a loaded 2-core CI machine

testkit::CommandResult check_offline(const std::filesystem::path& file) {
  return testkit::run_command({ORGPROXY_BINARY, "check-config", "--config", file.string(), "--offline"}, {}, kTimeout);
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The examples copied under `dir` as installed: every /etc/orgproxy/... path they name moved under `dir`
/// and present there (placeholder content: --offline checks that files exist, not what they hold).
std::filesystem::path install_examples(const TempDir& dir) {
  const auto root = dir.path() / "examples";
  std::filesystem::copy(kExamples, root, std::filesystem::copy_options::recursive);
  const std::regex etc_path(R"(/etc/orgproxy/[^\s,}\]"']+)");
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".yaml") continue;
    std::string text = read_text(entry.path());
    for (auto it = std::sregex_iterator(text.begin(), text.end(), etc_path); it != std::sregex_iterator(); ++it)
      dir.write("installed" + it->str(), "placeholder\n");
    text = std::regex_replace(text, std::regex("/etc/orgproxy/"), (dir.path() / "installed/etc/orgproxy/").string());
    std::ofstream(entry.path(), std::ios::trunc) << text;
  }
  return root;
}

TEST(CheckConfigExamples, every_shipped_example_passes_check_config_offline) {
  TempDir dir;
  const auto installed = install_examples(dir);
  for (const char* name :
       {"orgproxy.yaml", "group.yaml", "single-site-sa09.yaml", "group-scm-sel.yaml", "group-insi.yaml"}) {
    SCOPED_TRACE(name);
    const auto r = check_offline(installed / name);
    ASSERT_FALSE(r.timed_out) << r.output;
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find((installed / name).string()), std::string::npos) << "names the file checked:\n" << r.output;
    EXPECT_EQ(r.output.find("warning:"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("error:"), std::string::npos) << r.output;
  }
}

// Negative counterpart: the same example with one Luhn key broken is refused, the error at file:line:col.
TEST(CheckConfigExamples, an_example_with_a_broken_site_id_fails_check_config_at_its_position) {
  TempDir dir;
  std::string text = read_text(kExamples / "single-site-sa09.yaml");
  const std::string good = "id: \"381234567600017\"", bad = "id: \"381234567600018\"";
  const auto pos = text.find(good);
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, good.size(), bad);
  const int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n'));
  const int col = static_cast<int>(pos - text.rfind('\n', pos)) + 4;  // the value, after `id: `
  const auto file = dir.write("single-site-sa09.yaml", text);
  const auto r = check_offline(file);
  ASSERT_FALSE(r.timed_out) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const std::string where = file.string() + ":" + std::to_string(line) + ":" + std::to_string(col) + ": error: ";
  EXPECT_NE(r.output.find(where), std::string::npos) << "expected " << where << " in:\n" << r.output;
  EXPECT_NE(r.output.find("fails its Luhn check"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("configuration test failed"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace orgproxy::config::test
