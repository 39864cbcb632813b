// Addressing keys with RFC 7512 URIs and logging in with the PIN (field case C21): what matches, what is
// refused, PIN file rules, and that a wrong PIN is a clear error, never retried, never printed.
#include <fstream>
#include <iostream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>
#include <spdlog/spdlog.h>

#include "keystore_world.hpp"

namespace orgproxy::keystore::test {
namespace {

using testkit::KeyType;
using ::testing::HasSubstr;
using ::testing::Not;

void write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

TEST(KeyUri, token_label_with_space_binary_id_and_encoded_object_label_select_the_right_key) {
  KeystoreWorld world({}, "Cabinet A");
  auto wanted = world.token.generate_key({KeyType::ec_p256, std::string("\x01\xfe", 2), "auth;key"});
  auto other = world.token.generate_key({KeyType::ec_p256, std::string("\x01", 1), "auth-key-2"});
  IdentitySpec base = world.identity(wanted);
  auto with = [&](const std::string& uri) {
    IdentitySpec s = base;
    s.key = uri;
    return s;
  };
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({
      with("pkcs11:token=Cabinet%20A;id=%01%FE;type=private"),
      with("pkcs11:token=Cabinet%20A;object=auth%3Bkey;type=private"),
      with("pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;token=Cabinet%20A;object=auth%3Bkey"),
      with("pkcs11:token=Cabinet%20A;id=%01%fe?module-name=softhsm2"),
      with("pkcs11:token=Cabinet%20A;id=%01;type=private"),  // the other key: exact bytes, not a prefix
      with("pkcs11:token=Cabinet%20A;type=private"),         // both keys
      with("pkcs11:token=Cabinet;id=%01%FE"),                // label is not a prefix match either
      with("pkcs11:token=Cabinet%20A;id=%01%FE?module-name=opensc-pkcs11"),
  });
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(loads[i].identity) << i << ": " << loads[i].error;
  EXPECT_THAT(loads[4].error, HasSubstr("does not match the certificate"));
  EXPECT_THAT(loads[4].error, HasSubstr("key id=%01 label 'auth-key-2'"));
  EXPECT_THAT(loads[5].error, HasSubstr("2 private keys match"));
  EXPECT_THAT(loads[6].error, HasSubstr("no token matches"));
  EXPECT_THAT(loads[7].error, HasSubstr("no token matches"));
}

TEST(KeyUri, malformed_or_unsafe_uris_are_refused_with_the_reason) {
  KeystoreWorld world;
  auto key = world.key(KeyType::ec_p256, 1);
  IdentitySpec base = world.identity(key);
  auto with = [&](const std::string& uri) {
    IdentitySpec s = base;
    s.key = uri;
    return s;
  };
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({
      with("pkcs11:token=orgproxy;id=%01;pin-value=secret-1"),
      with("pkcs11:token=orgproxy;id=%01;type=private?pin-value=secret-2"),
      with("pkcs11:slot-id=0;id=%01"),
      with("pkcs11:token=orgproxy;id=%01;type=cert"),
      with("pkcs11:token=orgproxy;id=%0"),
      with("/etc/orgproxy/key.pem"),
      with(key.uri),  // positive control
  });
  EXPECT_THAT(loads[0].error, HasSubstr("pin-value belongs in the query"));
  EXPECT_THAT(loads[1].error, HasSubstr("pin-value in a URI is not allowed"));
  EXPECT_THAT(loads[2].error, HasSubstr("slot-id is refused"));
  EXPECT_THAT(loads[2].error, HasSubstr("by its label (token=)"));
  EXPECT_THAT(loads[3].error, HasSubstr("type must be 'private'"));
  EXPECT_FALSE(loads[4].identity);
  EXPECT_THAT(loads[5].error, HasSubstr("PEM key files are not allowed"));
  EXPECT_TRUE(loads[6].identity) << loads[6].error;
  for (const auto& l : loads) {
    EXPECT_THAT(l.error, Not(HasSubstr("secret-1")));
    EXPECT_THAT(l.error, Not(HasSubstr("secret-2")));
  }
}

TEST(TokenPin, pin_file_loses_exactly_one_trailing_newline) {
  KeystoreWorld world;
  auto options = world.options();
  for (const std::string& ending : {std::string(""), std::string("\n"), std::string("\r\n")}) {
    write_file(world.tmp / "pin", kUserPin + ending);
    options.pin_file = (world.tmp / "pin").string();
    EXPECT_NO_THROW(Keystore::open(options)) << "ending of " << ending.size() << " bytes";
  }
  for (const std::string& ending : {std::string("\n\n"), std::string(" \n"), std::string("\r")}) {
    write_file(world.tmp / "pin", kUserPin + ending);
    options.pin_file = (world.tmp / "pin").string();
    try {
      Keystore::open(options);
      ADD_FAILURE() << "a PIN with extra trailing bytes logged in";
    } catch (const KeystoreError& e) {
      EXPECT_EQ(e.ckr(), CKR_PIN_INCORRECT);
    }
  }
  write_file(world.tmp / "empty", "\n");
  options.pin_file = (world.tmp / "empty").string();
  EXPECT_THROW(Keystore::open(options), KeystoreError);
  options.pin_file = (world.tmp / "absent").string();
  EXPECT_THROW(Keystore::open(options), KeystoreError);
}

TEST(TokenPin, wrong_pin_is_a_keystore_error_naming_the_token_and_never_the_pin) {
  KeystoreWorld world;
  const std::string wrong_pin = "wrong-pin-8231";
  write_file(world.tmp / "wrong.pin", wrong_pin + "\n");
  auto options = world.options();
  options.pin_file = (world.tmp / "wrong.pin").string();
  LogCapture log;
  try {
    Keystore::open(options);
    ADD_FAILURE() << "opened with a wrong PIN";
  } catch (const KeystoreError& e) {
    EXPECT_EQ(e.ckr(), CKR_PIN_INCORRECT);
    EXPECT_THAT(e.what(), HasSubstr("token 'orgproxy'"));
    EXPECT_THAT(e.what(), HasSubstr("CKR_PIN_INCORRECT"));
    EXPECT_THAT(e.what(), Not(HasSubstr(wrong_pin)));
  }
  EXPECT_THAT(log.text(), HasSubstr("login refused"));
  EXPECT_THAT(log.text(), Not(HasSubstr(wrong_pin)));
  EXPECT_THAT(log.text(), Not(HasSubstr(kUserPin)));
  EXPECT_NO_THROW(Keystore::open(world.options()));  // positive control: the right PIN
}

TEST(TokenPin, refused_pin_is_never_tried_again_by_the_same_keystore) {
  KeystoreWorld world;
  auto key = world.key(KeyType::ec_p256, 1);
  write_file(world.tmp / "wrong.pin", "0000\n");
  IdentitySpec wrong = world.identity(key);
  wrong.key = key.uri + "?pin-source=file:" + (world.tmp / "wrong.pin").string();
  IdentitySpec right = wrong;
  right.key = key.uri + "?pin-source=" + world.token.pin_file().string();
  auto options = world.options();
  options.pin_file.clear();  // PINs come from the URIs only

  auto keystore = Keystore::open(options);
  auto first = keystore->load_identities({wrong});
  EXPECT_THAT(first[0].error, HasSubstr("CKR_PIN_INCORRECT"));
  // Even with the right PIN now, this keystore does not call C_Login again on that token: the remembered
  // refusal comes back (a real token locks after a few wrong PINs).
  auto second = keystore->load_identities({right});
  EXPECT_FALSE(second[0].identity);
  EXPECT_THAT(second[0].error, HasSubstr("not retried"));
  auto fresh = Keystore::open(options)->load_identities({right});  // positive control
  EXPECT_TRUE(fresh[0].identity) << fresh[0].error;
}

TEST(TokenPin, pin_with_uri_special_characters_logs_in_by_pin_value_or_pin_source) {
  const std::string pin = "p%41;s?e&c=1 \xc3\xa9";  // field case C21 (a)
  ScratchDir tmp;
  testkit::TestPki pki(tmp / "pki");
  testkit::SoftHsmToken token(tmp / "hsm", "Cabinet A", pin);
  auto key = token.generate_key({KeyType::ec_p256, "\x01", "auth-key"});
  testkit::OrgCertOptions cert;
  cert.subject = {"75", "CABINET A", kTenantA, "CABINET A"};
  IdentitySpec spec{kTenantA, "dmp", pki.issue_org_cert(key.public_key.get(), cert).string(), ""};
  const std::string uri = "pkcs11:token=Cabinet%20A;object=auth-key;type=private";
  KeystoreOptions options;
  options.modules.push_back({"softhsm", testkit::SoftHsmToken::module_path()});

  LogCapture log;
  spec.key = uri + "?pin-value=p%2541%3Bs%3Fe%26c%3D1%20%C3%A9";
  auto refused = Keystore::open(options)->load_identities({spec});
  EXPECT_THAT(refused[0].error, HasSubstr("pin-value in a URI is not allowed"));
  EXPECT_THAT(refused[0].error, Not(HasSubstr("p%2541")));

  // Each keystore lives in its own scope: PKCS#11 login state belongs to the whole process, so while any
  // identity holds a logged-in session, another C_Login answers CKR_USER_ALREADY_LOGGED_IN whatever the PIN.
  options.allow_pin_value = true;
  {
    auto by_value = Keystore::open(options)->load_identities({spec});
    EXPECT_TRUE(by_value[0].identity) << by_value[0].error;
  }
  {
    spec.key = uri + "?pin-source=" + token.pin_file().string();
    auto by_source = Keystore::open(options)->load_identities({spec});
    EXPECT_TRUE(by_source[0].identity) << by_source[0].error;
  }

  // (b) the PIN written raw, unencoded: it decodes to something else and fails, clearly and once.
  spec.key = uri + "?pin-value=" + pin;
  auto raw = Keystore::open(options)->load_identities({spec});
  EXPECT_FALSE(raw[0].identity);
  std::cout << "[ observed ] raw pin-value: " << raw[0].error << "\n";
  EXPECT_THAT(raw[0].error, Not(HasSubstr("s?e&c")));
  EXPECT_THAT(log.text(), Not(HasSubstr("s?e&c")));
  EXPECT_THAT(log.text(), Not(HasSubstr("p%2541")));
}

}  // namespace
}  // namespace orgproxy::keystore::test
