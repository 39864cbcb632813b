// Modules and PINs (issue 3 point 1): `credential:NAME` PIN files (systemd LoadCredential), a p11-kit registered
// module by name, and two modules in one process told apart by `module-path` in the key URI.
#include <cstdlib>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fault_world.hpp"

namespace orgproxy::keystore::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

/// Sets an environment variable for the test's lifetime (restoring the previous value).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(Credentials, pin_file_credential_name_reads_the_systemd_credentials_directory) {
  KeystoreWorld world;
  auto key = world.key(testkit::KeyType::ec_p256, 0x31, "cred");
  auto spec = world.identity(key);
  std::filesystem::create_directories(world.tmp / "creds");
  std::ofstream(world.tmp / "creds" / "pin") << kUserPin << "\n";
  KeystoreOptions options = world.options();
  options.pin_file = "credential:pin";
  {
    ScopedEnv env("CREDENTIALS_DIRECTORY", (world.tmp / "creds").string());
    auto keystore = Keystore::open(options);
    auto loads = keystore->load_identities({spec});
    EXPECT_EQ(loads.at(0).error, "");
    EXPECT_EQ(sign_and_verify(*keystore, *loads.at(0).identity), "");
  }
  // Without the variable (not started by systemd with LoadCredential=): a clear error, no PIN in it.
  ::unsetenv("CREDENTIALS_DIRECTORY");
  try {
    Keystore::open(options);
    ADD_FAILURE() << "open without $CREDENTIALS_DIRECTORY must fail";
  } catch (const KeystoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("CREDENTIALS_DIRECTORY is not set"));
    EXPECT_THAT(e.what(), Not(HasSubstr(kUserPin)));
  }
  ScopedEnv env("CREDENTIALS_DIRECTORY", (world.tmp / "creds").string());
  options.pin_file = "credential:../creds/pin";
  EXPECT_THROW(Keystore::open(options), KeystoreError) << "a credential name is one file name";
  options.pin_file = "credential:absent";
  EXPECT_THROW(Keystore::open(options), KeystoreError);
}

TEST(Modules, p11kit_registered_module_is_found_by_name) {
  // Debian's softhsm2 package registers its module with p11-kit as "softhsm2" (the deployment's normal way).
  if (!std::filesystem::exists("/usr/share/p11-kit/modules/softhsm2.module"))
    GTEST_SKIP() << "softhsm2 is not registered with p11-kit on this machine";
  KeystoreWorld world;
  auto key = world.key(testkit::KeyType::rsa2048, 0x32, "registered");
  auto spec = world.identity(key);
  KeystoreOptions options = world.options();
  options.modules = {{"softhsm2", ""}};
  auto keystore = Keystore::open(options);
  auto loads = keystore->load_identities({spec});
  EXPECT_EQ(loads.at(0).error, "");
  ASSERT_TRUE(loads.at(0).identity);
  EXPECT_EQ(sign_and_verify(*keystore, *loads.at(0).identity), "");
  // The URI may name it too (RFC 7512 query attribute module-name).
  IdentitySpec named = spec;
  named.key = spec.key + "?module-name=softhsm2";
  EXPECT_EQ(keystore->load_identities({named}).at(0).error, "");
  // Control: a name nobody registered is refused, naming it.
  options.modules = {{"orgproxy-no-such-module", ""}};
  try {
    Keystore::open(options);
    ADD_FAILURE() << "an unregistered module name must be refused";
  } catch (const KeystoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("orgproxy-no-such-module"));
  }
}

TEST(Modules, two_modules_in_one_process_are_told_apart_by_module_path_in_the_uri) {
  FaultWorld f;  // token "orgproxy" reachable through SoftHSM directly and through the shim module
  KeystoreOptions options = f.options();
  options.modules = {{"softhsm", testkit::SoftHsmToken::module_path()}, {"shim", ORGPROXY_P11SHIM}};
  auto keystore = Keystore::open(options);
  // Without module attributes the key is found twice (same token behind two modules): refused as ambiguous.
  auto ambiguous = keystore->load_identities({f.spec_a});
  EXPECT_THAT(ambiguous.at(0).error, HasSubstr("2 private keys match"));
  IdentitySpec via_shim = f.spec_a;
  via_shim.key = f.spec_a.key + "?module-path=" + testkit::pkcs11_uri_encode(ORGPROXY_P11SHIM);
  auto loads = keystore->load_identities({via_shim});
  ASSERT_EQ(loads.at(0).error, "");
  EXPECT_EQ(sign_and_verify(*keystore, *loads.at(0).identity), "");
  // Proof the sign went through the shim module: a fault injected there is seen (and recovered).
  f.command("fail C_SignInit CKR_SESSION_HANDLE_INVALID 1 token=orgproxy");
  EXPECT_EQ(sign_and_verify(*keystore, *loads.at(0).identity), "");
  EXPECT_EQ(keystore->stats().recoveries["session_lost"], 1u);
}

}  // namespace
}  // namespace orgproxy::keystore::test
