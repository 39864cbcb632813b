// Listener body_timeout / body_min_rate: the slow-upload defence's settings.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;

const std::string kListener = yaml(R"(
listeners:
  - name: ris
    address: 127.0.0.1
    port: 8080
)");  // the test adds keys of the listener at line 5

TEST(ListenerBodyPace, defaults_are_sixty_seconds_and_one_kib_per_second) {
  auto r = load_ok(kListener);
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->listeners[0].body_timeout, std::chrono::seconds(60));
  EXPECT_EQ(r.config->listeners[0].body_min_rate, 1024u);
}

TEST(ListenerBodyPace, both_are_read_and_a_zero_rate_is_allowed) {
  auto r = load_ok(kListener + "    body_timeout: 90s\n    body_min_rate: 0\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->listeners[0].body_timeout, std::chrono::seconds(90));
  EXPECT_EQ(r.config->listeners[0].body_min_rate, 0u);
  auto r2 = load_ok(kListener + "    body_min_rate: 8KiB\n");
  ASSERT_TRUE(r2.config);
  EXPECT_EQ(r2.config->listeners[0].body_min_rate, 8192u);
}

TEST(ListenerBodyPace, a_zero_body_timeout_is_an_error_at_its_value) {
  auto d = load_errors(kListener + "    body_timeout: 0s\n");
  EXPECT_THAT(d, Contains(ErrorAt(5, 19, "body_timeout")));
}

}  // namespace
}  // namespace orgproxy::config::test
