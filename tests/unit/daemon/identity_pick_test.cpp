// Which identity a request travels under: the newest valid usable one of the upstream's purpose.
#include <gtest/gtest.h>

#include "orgproxy/daemon/runtime.hpp"

namespace orgproxy::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

class FakeIdentity : public keystore::Identity {
 public:
  FakeIdentity(Clock::time_point nb, Clock::time_point na, bool usable = true)
      : nb_(nb), na_(na), usable_(usable) {}
  const std::string& tenant_id() const override { return tenant_; }
  const std::string& purpose() const override { return purpose_; }
  X509* certificate() const override { return nullptr; }
  STACK_OF(X509) * intermediates() const override { return nullptr; }
  EVP_PKEY* private_key() const override { return nullptr; }
  Clock::time_point not_before() const override { return nb_; }
  Clock::time_point not_after() const override { return na_; }
  const std::string& subject() const override { return tenant_; }
  const std::string& serial_hex() const override { return tenant_; }
  bool usable() const override { return usable_; }
  bool supports_pss() const override { return true; }

 private:
  std::string tenant_ = "312345678200002";
  std::string purpose_ = "dmp";
  Clock::time_point nb_, na_;
  bool usable_;
};

IdentitySlot slot(Clock::time_point nb, Clock::time_point na, bool usable = true) {
  return {std::make_shared<FakeIdentity>(nb, na, usable), ""};
}

TEST(IdentityPick, none_configured_is_identity_missing) {
  EXPECT_EQ(pick_identity({}, Clock::now()).error, ErrorCode::identity_missing);
}

TEST(IdentityPick, newest_valid_identity_wins_during_renewal_overlap) {
  auto now = Clock::now();
  std::vector<IdentitySlot> slots{slot(now - 1000h, now + 100h), slot(now - 10h, now + 26000h)};
  auto pick = pick_identity(slots, now);
  ASSERT_EQ(pick.error, ErrorCode::none);
  EXPECT_EQ(pick.identity, slots[1].identity.get());
}

TEST(IdentityPick, expired_not_yet_valid_unusable_and_unloaded_identities_are_skipped) {
  auto now = Clock::now();
  std::vector<IdentitySlot> slots{slot(now - 1000h, now - 1h),          // expired
                                  slot(now + 1h, now + 1000h),          // not yet valid (newest)
                                  slot(now - 5h, now + 1000h, false),   // token failing
                                  IdentitySlot{nullptr, "chain does not verify"}};
  EXPECT_EQ(pick_identity(slots, now).error, ErrorCode::identity_unavailable);
  slots.push_back(slot(now - 2000h, now + 1h));  // positive control: one valid, older identity
  auto pick = pick_identity(slots, now);
  ASSERT_EQ(pick.error, ErrorCode::none);
  EXPECT_EQ(pick.identity, slots.back().identity.get());
}

TEST(UpstreamStateTest, ip_literal_upstreams_send_no_sni_and_verify_the_ip) {
  config::Upstream u;
  u.host = "::1";
  u.port = 8443;
  auto s = make_upstream_state(u);
  EXPECT_EQ(s.sni, "");
  EXPECT_TRUE(s.verify_is_ip);
  EXPECT_EQ(s.authority, "[::1]:8443");
  u.sni = "dmp.test.local";
  s = make_upstream_state(u);
  EXPECT_EQ(s.sni, "dmp.test.local");
  EXPECT_EQ(s.verify_name, "dmp.test.local");
  EXPECT_FALSE(s.verify_is_ip);
  EXPECT_EQ(s.authority, "dmp.test.local:8443");
}

}  // namespace
}  // namespace orgproxy::daemon
