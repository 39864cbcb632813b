// The shipped examples must stay valid as the schema evolves.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

const std::filesystem::path kExamples = std::filesystem::path(__FILE__).parent_path() / "../../../config/examples";

TEST(Examples, main_example_with_its_sites_loads_without_warnings) {
  LoadResult r;
  try {
    r = load_config(kExamples / "orgproxy.yaml");
  } catch (const ConfigError& e) {
    FAIL() << e.what();
  }
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->tenants.size(), 2u);
  EXPECT_NE(r.config->find_tenant("499700270616011"), nullptr);
  EXPECT_NE(r.config->find_tenant("312345678200002"), nullptr);
  for (const auto& w : r.warnings) ADD_FAILURE() << w.str();
}

TEST(Examples, group_example_with_clients_loads_without_warnings) {
  LoadResult r;
  try {
    r = load_config(kExamples / "group.yaml");
  } catch (const ConfigError& e) {
    FAIL() << e.what();
  }
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->clients.size(), 2u);
  EXPECT_TRUE(r.config->clients[0].allows_tenant("312345678200002"));
  EXPECT_FALSE(r.config->clients[1].allows_tenant("499700270616011"));
  for (const auto& w : r.warnings) ADD_FAILURE() << w.str();
}

}  // namespace
}  // namespace orgproxy::config::test
