// Diagnostics of the loader: positions, types, unknown keys, syntax errors, all errors at once.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::SizeIs;

TEST(Loader, minimal_configuration_loads_with_defaults) {
  auto r = load_ok(kBase);
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(c.source_file, "t.yaml");
  ASSERT_THAT(c.listeners, SizeIs(1));
  EXPECT_EQ(c.listeners[0].name, "ris");
  EXPECT_EQ(c.listeners[0].tenant_header, "X-Orgproxy-Tenant");
  EXPECT_EQ(c.settings.workers, 0u);
  EXPECT_EQ(c.settings.log_level, "info");
  const Upstream* u = c.find_upstream("dmp");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->host, "lps2.dmp.gouv.fr");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->base_path, "/si-dmp-server/v2/services");
  EXPECT_EQ(u->sni, "lps2.dmp.gouv.fr");
  EXPECT_EQ(u->tls_min, TlsVersion::tls1_2);
  const Tenant* a = c.find_tenant("312345678200002");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->identities.count(Purpose::dmp), 1u);
  EXPECT_EQ(a->identities.at(Purpose::dmp).at(0).cert_file, "/cfg/a.pem");  // relative to the file's directory
  EXPECT_EQ(a->identities.at(Purpose::dmp).at(0).mark.str(), "t.yaml:12:50");
  // kBase sets no PIN source: the only warning says so.
  ASSERT_THAT(r.warnings, SizeIs(1));
  EXPECT_THAT(r.warnings, Contains(WarningAt(12, 50, "pkcs11.pin_file is not set")));
}

TEST(Loader, unknown_key_gets_a_did_you_mean_suggestion) {
  auto d = load_errors(yaml(R"(
listeners:
  - name: ris
    adress: 127.0.0.1
    port: 8080
)"));
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(3, 5, "listener 'ris': unknown key 'adress' (did you mean 'address'?)")));
  // Control: with the suggestion applied the file loads.
  EXPECT_TRUE(load_ok("listeners:\n  - name: ris\n    address: 127.0.0.1\n    port: 8080\n").config);
}

TEST(Loader, unknown_key_far_from_any_lists_the_allowed_ones) {
  auto d = load_errors(kBase + "colour: blue\n");
  EXPECT_THAT(d, Contains(ErrorAt(13, 1, "unknown key 'colour' (allowed: settings, pkcs11, listeners")));
}

TEST(Loader, top_level_typo_is_suggested) {
  auto d = load_errors(kBase + "tenant:\n  - id: x\n");
  EXPECT_THAT(d, Contains(ErrorAt(13, 1, "unknown key 'tenant' (did you mean 'tenants'?)")));
}

TEST(Loader, wrong_node_types_are_explained) {
  auto d = load_errors(yaml(R"(
listeners:
  name: ris
upstreams: [a, b]
settings: fast
)"));
  EXPECT_THAT(d, Contains(ErrorAt(2, 3, "listeners: expected a sequence (a list of '- ' items), found a mapping")));
  EXPECT_THAT(d, Contains(ErrorAt(3, 12, "upstreams: expected a mapping of name → upstream, found a sequence")));
  EXPECT_THAT(d, Contains(ErrorAt(4, 11, "settings: expected a mapping (key: value lines), found a scalar")));
}

TEST(Loader, scalar_expected_but_list_given) {
  auto d = load_errors(kBase + "settings:\n  workers: [1, 2]\n");
  EXPECT_THAT(d, Contains(ErrorAt(14, 12, "settings: workers: expected a single value, found a sequence")));
}

TEST(Loader, missing_required_keys_are_named_at_the_mapping) {
  auto d = load_errors(yaml(R"(
listeners:
  - { name: ris, address: 127.0.0.1, port: 8080 }
upstreams:
  dmp:
    url: https://dmp.example
routes:
  - { upstream: dmp }
)"));
  EXPECT_THAT(d, Contains(ErrorAt(5, 5, "upstream 'dmp': missing required key 'ca_file'")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 5, "upstream 'dmp': missing required key 'environment'")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 5, "upstream 'dmp': missing required key 'purpose'")));
  EXPECT_THAT(d, Contains(ErrorAt(7, 5, "route #1: missing required key 'prefix'")));
  EXPECT_THAT(errors_only(d), SizeIs(4));
}

TEST(Loader, a_file_with_three_errors_reports_three) {
  auto d = load_errors(yaml(R"(
settings:
  workers: 08
  log_level: verbose
listeners:
  - { name: ris, address: 127.0.0.1, port: 70000 }
)"));
  const auto errors = errors_only(d);
  ASSERT_THAT(errors, SizeIs(3));
  EXPECT_THAT(errors, Contains(ErrorAt(2, 12, "write 8, not 08")));
  EXPECT_THAT(errors, Contains(ErrorAt(3, 14, "'verbose' is not allowed (allowed: trace, debug, info")));
  EXPECT_THAT(errors, Contains(ErrorAt(5, 44, "'70000' is out of range: allowed 0 to 65535")));
  // Control: the same file with the three values corrected loads.
  auto r = load_ok(yaml(R"(
settings:
  workers: 8
  log_level: debug
listeners:
  - { name: ris, address: 127.0.0.1, port: 7000 }
)"));
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->settings.workers, 8u);
  EXPECT_EQ(r.config->listeners[0].port, 7000);
}

TEST(Loader, config_error_message_lists_every_diagnostic) {
  try {
    load_config_text("settings:\n  workers: -1\n  shutdown_grace: 5\n  max_idle_connections: 2000000\n", "main.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_THAT(what, HasSubstr("configuration has 4 errors"));
    EXPECT_THAT(what, HasSubstr("settings: max_idle_connections"));
    EXPECT_THAT(what, HasSubstr("main.yaml:2:12: error: settings: workers: '-1' is negative"));
    EXPECT_THAT(what, HasSubstr("main.yaml:3:19: error: settings: shutdown_grace: '5' has no unit"));
    EXPECT_THAT(what, HasSubstr("main.yaml: error: no listener is configured"));
  }
}

TEST(Loader, yaml_syntax_error_becomes_a_diagnostic_with_its_mark) {
  auto d = load_errors("listeners:\n  - { name: ris, port: 8080\nroutes: []\n");
  ASSERT_THAT(d, SizeIs(1));  // nothing else: a file that does not parse is not checked further
  // At the '{' left open, not where the parser gave up (which it still says).
  EXPECT_THAT(d, Contains(ErrorAt(2, 5, "YAML syntax error: end of map flow not found: the '{' opened here is "
                                        "never closed (the parser gave up at line 3, column 7)")));
}

TEST(Loader, unclosed_flow_sequence_at_the_end_of_the_file_is_reported_at_its_bracket) {
  auto d = load_errors("listeners:\n  - name: ris\n    address: 127.0.0.1\n    selectors: [header, path\n");
  ASSERT_THAT(d, SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(4, 16, "YAML syntax error: end of sequence flow not found: the '[' opened here")));
}

TEST(Loader, brackets_in_quotes_and_comments_do_not_hide_the_unclosed_one) {
  auto d = load_errors(yaml(R"(
listeners:  # [a comment with a bracket
  - name: "ris[1"
    selectors: ['header', "path]", path
    address: 127.0.0.1
)"));
  ASSERT_THAT(d, SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(3, 16, "the '[' opened here is never closed")));
}

TEST(Loader, closed_flow_collections_with_brackets_in_strings_load) {
  // Positive control of the scan above: brackets in quotes and comments, every collection closed.
  std::string text = kBase;
  const std::string tenant = "{ id: \"312345678200002\", ";
  ASSERT_NE(text.find(tenant), std::string::npos);
  text.replace(text.find(tenant), tenant.size(), tenant + "name: \"Cabinet [Nord] {1}\", ");
  auto r = load_ok(text + "# ] }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->tenants.at(0).name, "Cabinet [Nord] {1}");
}

TEST(Loader, tab_indentation_is_a_syntax_error_not_a_crash) {
  auto d = load_errors("listeners:\n\t- name: ris\n");
  ASSERT_THAT(d, SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(2, 2, "YAML syntax error")));
}

TEST(Loader, several_yaml_documents_are_refused) {
  auto d = load_errors(kBase + "---\nsettings: {}\n");
  EXPECT_THAT(d, Contains(ErrorAt(14, 1, "more than one YAML document")));
}

TEST(Loader, duplicate_keys_are_reported_with_the_first_place) {
  auto d = load_errors(yaml(R"(
listeners:
  - name: ris
    address: 127.0.0.1
    port: 8080
    port: 8081
)"));
  EXPECT_THAT(d, Contains(ErrorAt(5, 5, "duplicate key 'port' (first written at t.yaml:4:5)")));
}

TEST(Loader, empty_file_is_refused_for_having_no_listener) {
  auto d = load_errors("");
  EXPECT_THAT(d, Contains(DiagAt(Severity::error, 0, 0, "no listener is configured")));
}

TEST(Loader, top_level_must_be_a_mapping) {
  auto d = load_errors("- a\n- b\n");
  EXPECT_THAT(d, Contains(ErrorAt(1, 1, "configuration: expected a mapping")));
}

TEST(Loader, relative_paths_of_a_relatively_named_file_become_absolute) {
  TempDir dir;
  dir.write("etc/main.yaml", kBase);
  const auto previous = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  LoadResult r;
  try {
    r = load_config("etc/main.yaml");
  } catch (const ConfigError& e) {
    ADD_FAILURE() << e.what();
  }
  std::filesystem::current_path(previous);
  ASSERT_TRUE(r.config);
  // Marks keep the name as given; paths do not depend on the working directory any more.
  EXPECT_EQ(r.config->tenants[0].mark.file, "etc/main.yaml");
  EXPECT_EQ(r.config->tenants[0].identities.at(Purpose::dmp)[0].cert_file, (dir.path() / "etc/a.pem").string());
}

TEST(Loader, missing_file_is_a_diagnostic_not_an_exception_of_another_type) {
  TempDir dir;
  try {
    load_config(dir.path() / "absent.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_THAT(e.diagnostics(), SizeIs(1));
    EXPECT_THAT(e.diagnostics()[0].message, HasSubstr("cannot read configuration file"));
  }
}

TEST(Loader, directory_instead_of_file_is_a_diagnostic) {
  TempDir dir;
  try {
    load_config(dir.path());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.diagnostics()[0].message, HasSubstr("is not a regular file"));
  }
}

TEST(Loader, durations_and_sizes_read_their_units) {
  auto r = load_ok(yaml(R"(
settings: { shutdown_grace: 2m, max_idle_connections: 512 }
listeners:
  - { name: ris, address: 127.0.0.1, port: 8080, header_timeout: 500ms, idle_timeout: 1h,
      max_header_bytes: 64KiB, max_header_count: 50 }
upstreams:
  dmp: { url: "https://d.example/", ca_file: ca.pem, environment: test, purpose: dmp,
         first_byte_timeout: 90s }
routes:
  - { prefix: /a, upstream: dmp, max_body: 20MiB }
  - { prefix: /b, upstream: dmp, max_body: 1000 }
  - { prefix: /c, upstream: dmp, max_body: 1GiB }
)"));
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(c.settings.shutdown_grace, std::chrono::minutes(2));
  EXPECT_EQ(c.settings.max_idle_connections, 512u);
  EXPECT_EQ(c.listeners[0].header_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(c.listeners[0].idle_timeout, std::chrono::hours(1));
  EXPECT_EQ(c.listeners[0].max_header_bytes, 64u * 1024);
  EXPECT_EQ(c.listeners[0].max_header_count, 50u);
  EXPECT_EQ(c.find_upstream("dmp")->first_byte_timeout, std::chrono::seconds(90));
  EXPECT_EQ(c.match_route("/a", "")->max_body_bytes, 20u << 20);
  EXPECT_EQ(c.match_route("/b", "")->max_body_bytes, 1000u);
  EXPECT_EQ(c.match_route("/c", "")->max_body_bytes, 1u << 30);
}

TEST(Loader, bad_durations_and_sizes_say_how_to_write_them) {
  auto d = load_errors(yaml(R"(
listeners:
  - { name: ris, address: 127.0.0.1, port: 8080, header_timeout: 5 s, idle_timeout: 2d,
      max_header_bytes: 64KB, max_header_count: 0 }
settings: { shutdown_grace: 11m }
)"));
  EXPECT_THAT(errors_only(d), SizeIs(5));
  EXPECT_THAT(d, Contains(ErrorAt(2, 66, "'5 s' has an unknown unit ' s'")));
  EXPECT_THAT(d, Contains(ErrorAt(2, 85, "'2d' has an unknown unit 'd': write a number and a unit: ms, s, m or h")));
  EXPECT_THAT(d, Contains(ErrorAt(3, 25, "'64KB' has an unknown size unit 'KB'")));
  EXPECT_THAT(d, Contains(ErrorAt(3, 49, "'0' is out of range: allowed 1 to 1000")));
  EXPECT_THAT(d, Contains(ErrorAt(4, 29, "'11m' is out of range: allowed 0s to 10m")));
}

TEST(Loader, null_value_is_reported_at_its_key) {
  auto d = load_errors(kBase + "settings:\n  log_level:\n");
  EXPECT_THAT(d, Contains(ErrorAt(14, 3, "settings: log_level: has no value")));
}

TEST(Loader, settings_are_read) {
  auto r = load_ok(kBase + "settings: { workers: 4, require_all_identities: true, log_level: debug }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->settings.workers, 4u);
  EXPECT_TRUE(r.config->settings.require_all_identities);
  EXPECT_EQ(r.config->settings.log_level, "debug");
}

}  // namespace
}  // namespace orgproxy::config::test
