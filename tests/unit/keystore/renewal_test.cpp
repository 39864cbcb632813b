// Renewal overlap: several certificates of one purpose loaded; the newest valid usable one is presented.
#include <chrono>

#include <gtest/gtest.h>

#include "keystore_world.hpp"

namespace orgproxy::keystore::test {
namespace {

using std::chrono::hours;
using std::chrono::system_clock;

TEST(Renewal, newest_valid_certificate_of_a_purpose_is_selected_and_expired_or_future_ones_are_not) {
  KeystoreWorld world;
  auto old_key = world.key(testkit::KeyType::rsa2048, 0x21, "dmp-2025");
  auto new_key = world.key(testkit::KeyType::ec_p256, 0x22, "dmp-2026");
  const auto now = system_clock::now();
  testkit::OrgCertOptions old_cert, new_cert;
  old_cert.not_before = now - hours(24 * 300);
  old_cert.not_after = now + hours(24 * 60);
  old_cert.file_stem = "old";
  new_cert.not_before = now - hours(2);
  new_cert.not_after = now + hours(24 * 1000);
  new_cert.file_stem = "new";
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(old_key, kTenantA, "dmp", "CABINET A", old_cert),
                                          world.identity(new_key, kTenantA, "dmp", "CABINET A", new_cert)});
  ASSERT_EQ(loads.at(0).error, "");
  ASSERT_EQ(loads.at(1).error, "");
  const IdentityPtr older = loads[0].identity, newer = loads[1].identity;

  EXPECT_EQ(select_current_identity({older, newer}, now), newer);
  EXPECT_EQ(select_current_identity({newer, older}, now), newer) << "order of the list does not matter";
  // Before the renewed certificate's notBefore, the old one serves (control for the time rule).
  EXPECT_EQ(select_current_identity({older, newer}, now - hours(3)), older);
  // After the old one expired only the new one is left; after both, none.
  EXPECT_EQ(select_current_identity({older}, now + hours(24 * 61)), nullptr);
  EXPECT_EQ(select_current_identity({older, newer}, now + hours(24 * 2000)), nullptr);
  EXPECT_EQ(select_current_identity({nullptr, older}, now), older);
  EXPECT_EQ(select_current_identity({}, now), nullptr);
}

}  // namespace
}  // namespace orgproxy::keystore::test
