// pkcs11 section and key URIs (RFC 7512; field case C21).
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

const std::string kHead = yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
tenants:
  - id: "312345678200002"
    identities:
      dmp:
)");  // the identity goes on line 6, its key value at column 31

std::string with_key(const std::string& key, const std::string& tail = "") {
  return kHead + "        - { cert: a.pem, key: \"" + key + "\" }\n" + tail;
}

TEST(Pkcs11, section_is_read_with_paths_resolved) {
  auto r = load_ok(kBase + yaml(R"(
pkcs11:
  modules:
    - { name: softhsm, path: /usr/lib/softhsm/libsofthsm2.so }
    - { name: local, path: lib/libx.so }
    - { name: registered }
  pin_file: pins/user.pin
  max_concurrent_signs: 8
)"));
  ASSERT_TRUE(r.config);
  const auto& p = r.config->pkcs11;
  ASSERT_THAT(p.modules, SizeIs(3));
  EXPECT_EQ(p.modules[0].path, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(p.modules[1].path, "/cfg/lib/libx.so");
  EXPECT_EQ(p.modules[2].path, "");
  EXPECT_EQ(p.pin_file, "/cfg/pins/user.pin");
  EXPECT_EQ(p.max_concurrent_signs, 8u);
  EXPECT_FALSE(p.allow_pin_value);
}

TEST(Pkcs11, good_key_uris_are_accepted) {
  for (const char* uri :
       {"pkcs11:token=Cabinet%20A;object=auth-key;type=private", "pkcs11:token=orgproxy;id=%01%FE;type=private",
        "pkcs11:serial=1234;object=a%3Bb?pin-source=file:/etc/orgproxy/pins/a.pin",
        "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;object=a?module-name=softhsm2"}) {
    auto r = load_ok(with_key(uri, "pkcs11: { pin_file: pin }\n"));
    ASSERT_TRUE(r.config) << uri;
    EXPECT_THAT(r.warnings, SizeIs(0)) << uri;
  }
}

TEST(Pkcs11, keys_without_any_pin_source_draw_one_warning) {
  const std::string two_sites = yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
tenants:
  - { id: "312345678200002", identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] } }
  - { id: "498765432103017", identities: { dmp: [{ cert: b.pem, key: "pkcs11:token=t;object=b" }] } }
)");
  auto r = load_ok(two_sites);
  ASSERT_TRUE(r.config);
  ASSERT_THAT(r.warnings, SizeIs(1));
  EXPECT_THAT(r.warnings, Contains(WarningAt(3, 50, "key URIs give no PIN and pkcs11.pin_file is not set")));
  EXPECT_THAT(load_ok(two_sites + "pkcs11: { pin_file: /run/pin }\n").warnings, SizeIs(0));
}

TEST(Pkcs11, pin_value_in_the_path_is_refused_at_the_key) {
  auto d = load_errors(with_key("pkcs11:token=a;object=k;pin-value=1234", "pkcs11: { allow_pin_value: true }\n"));
  EXPECT_THAT(d, Contains(ErrorAt(6, 31, "pin-value is in the URI path (';pin-value=')")));
}

TEST(Pkcs11, pin_value_in_the_query_needs_the_setting) {
  const std::string uri =
      "pkcs11:token=Cabinet%20A;object=auth-key;type=private"
      "?pin-value=p%2541%3Bs%3Fe%26c%3D1%20%C3%A9";
  auto d = load_errors(with_key(uri));
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(6, 31, "pin-value in a key URI is refused unless pkcs11.allow_pin_value is true")));
  auto r = load_ok(with_key(uri, "pkcs11: { allow_pin_value: true }\n"));
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->tenants[0].identities.at(Purpose::dmp)[0].key, uri);  // kept exactly, decoded by the keystore
}

TEST(Pkcs11, raw_unencoded_pin_is_refused_without_quoting_it) {
  auto d = load_errors(
      with_key("pkcs11:token=Cabinet%20A;object=k?pin-value=p%41;s?e&c=1 é", "pkcs11: { allow_pin_value: true }\n"));
  ASSERT_THAT(errors_only(d), Not(SizeIs(0)));
  EXPECT_THAT(d, Contains(ErrorAt(6, 31, "the pin-value is not well-formed")));
  for (const auto& diag : d) {
    EXPECT_THAT(diag.message, Not(HasSubstr("p%41"))) << diag.str();
    EXPECT_THAT(diag.message, Not(HasSubstr("s?e"))) << diag.str();
  }
}

TEST(Pkcs11, slot_id_is_a_warning_advising_label_or_serial) {
  auto r = load_ok(with_key("pkcs11:slot-id=0;object=k"));
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.warnings, Contains(WarningAt(6, 31, "name the token by label (token=) or serial (serial=)")));
}

struct BadUri {
  const char* uri;
  const char* message;
};
class BadKeyUris : public ::testing::TestWithParam<BadUri> {};

TEST_P(BadKeyUris, are_refused_at_the_key) {
  ASSERT_TRUE(load_ok(with_key("pkcs11:token=a;object=k;type=private")).config);  // control
  auto d = load_errors(with_key(GetParam().uri));
  EXPECT_THAT(d, Contains(ErrorAt(6, 31, GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(
    Rules, BadKeyUris,
    ::testing::Values(BadUri{"pkcs11:token=a;objet=k", "unknown attribute 'objet' (did you mean 'object'?)"},
                      BadUri{"pkcs11:token=a;object=k;type=cert", "type=cert does not name a private key"},
                      BadUri{"pkcs11:token=a;object=k;type=privat", "is not a PKCS#11 object type"},
                      BadUri{"pkcs11:token=a;token=b;object=k", "attribute 'token' appears more than once"},
                      BadUri{"pkcs11:token=Cabinet A;object=k", "contains a space, which must be percent-encoded"},
                      BadUri{"pkcs11:token=a;id=%0;object=k", "contains '%' not followed by two hex digits"},
                      BadUri{"pkcs11:token=a;object", "attribute 'object' has no '=value'"},
                      BadUri{"pkcs11:token=a;;object=k", "empty attribute"},
                      BadUri{"pkcs11:object=k?token=a", "attribute 'token' belongs in the URI path"},
                      BadUri{"pkcs11:object=k;pin-source=file:/p", "pin-source' belongs in the URI query"}));

TEST(Pkcs11, uri_without_object_is_a_warning) {
  auto r = load_ok(with_key("pkcs11:token=a"));
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.warnings, Contains(WarningAt(6, 31, "names no object")));
}

TEST(Pkcs11, duplicate_module_names_are_refused) {
  auto d = load_errors(kBase + "pkcs11:\n  modules: [{ name: a, path: /x.so }, { name: a }]\n");
  EXPECT_THAT(d, Contains(ErrorAt(14, 47, "module 'a' is already defined at t.yaml:14:13")));
}

}  // namespace
}  // namespace orgproxy::config::test
