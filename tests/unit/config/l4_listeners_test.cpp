// L4 listeners (`mode: tunnel | smtp-starttls | imap-starttls`) and L4 upstreams (`address: host:port`):
// what is read, and every misuse refused at its file:line:col.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::SizeIs;

// Lines 1-6: tenant and upstreams; listeners from line 8.
const std::string kBase = yaml(R"(
tenants:
  - { id: "312345678200002", identities: { mssante: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] } }
upstreams:
  mss-imap: { address: "imap.mssante.example:143", ca_file: ca.pem, environment: test, purpose: mssante }
  mss-smtp: { address: "[fd00::25]:587", ca_file: ca.pem, environment: test, purpose: mssante }
  dmp: { url: "https://dmp.example/si", ca_file: ca.pem, environment: test, purpose: dmp }
listeners:
)");

TEST(L4Listeners, starttls_and_tunnel_listeners_are_read_with_their_site_and_upstream) {
  auto r = load_ok(kBase +
                   "  - { name: imap, port: 1143, mode: imap-starttls, tenant: \"312345678200002\", upstream: mss-imap }\n"
                   "  - { name: smtp, port: 1587, mode: smtp-starttls, tenant: \"312345678200002\", upstream: mss-smtp,"
                   " max_connections: 50, idle_timeout: 5m }\n"
                   "  - { name: ris, port: 8080 }\n");
  ASSERT_TRUE(r.config);
  const auto& ls = r.config->listeners;
  EXPECT_EQ(ls[0].mode, ListenerMode::imap_starttls);
  EXPECT_THAT(ls[0].selectors, ElementsAre(SelectorKind::fixed));
  EXPECT_EQ(ls[0].fixed_tenant, "312345678200002");
  EXPECT_EQ(ls[0].upstream, "mss-imap");
  EXPECT_EQ(ls[0].max_connections, 1024u);
  EXPECT_EQ(ls[1].mode, ListenerMode::smtp_starttls);
  EXPECT_EQ(ls[1].max_connections, 50u);
  EXPECT_EQ(ls[1].idle_timeout, std::chrono::minutes(5));
  EXPECT_EQ(ls[2].mode, ListenerMode::http);
  const Upstream* imap = r.config->find_upstream("mss-imap");
  ASSERT_NE(imap, nullptr);
  EXPECT_EQ(imap->host, "imap.mssante.example");
  EXPECT_EQ(imap->port, 143);
  EXPECT_EQ(imap->sni, "imap.mssante.example");
  const Upstream* smtp = r.config->find_upstream("mss-smtp");
  EXPECT_EQ(smtp->host, "fd00::25");
  EXPECT_EQ(smtp->sni, "") << "RFC 6066: no SNI for an IP literal";
}

TEST(L4Listeners, l4_listener_needs_an_upstream_and_only_the_fixed_selector) {
  auto d = load_errors(kBase + "  - { name: a, port: 1, mode: tunnel, tenant: \"312345678200002\" }\n"
                               "  - { name: b, port: 2, mode: tunnel, tenant: \"312345678200002\", upstream: mss-imap,"
                               " selectors: [header] }\n"
                               "  - { name: c, port: 3, mode: tunnel, upstream: mss-imap }\n"
                               "  - { name: d, port: 4, mode: pop3, tenant: \"312345678200002\", upstream: mss-imap }\n");
  EXPECT_THAT(d, Contains(ErrorAt(8, 5, "needs 'upstream: <name>'")));
  EXPECT_THAT(d, Contains(ErrorAt(9, 97, "only the 'fixed' selector")));
  EXPECT_THAT(d, Contains(ErrorAt(10, 5, "needs 'tenant: <id>'")));
  EXPECT_THAT(d, Contains(ErrorAt(11, 31, "pop3")));
  EXPECT_THAT(errors_only(d), SizeIs(4));
}

TEST(L4Listeners, upstream_kinds_must_match_their_users) {
  auto d = load_errors(kBase + "  - { name: t, port: 1, mode: tunnel, tenant: \"312345678200002\", upstream: dmp }\n"
                               "  - { name: h, port: 2, upstream: mss-imap, max_connections: 5 }\n"
                               "routes:\n"
                               "  - { prefix: /mail, upstream: mss-imap }\n");
  EXPECT_THAT(d, Contains(ErrorAt(8, 5, "has a url (HTTP)")));
  EXPECT_THAT(d, Contains(ErrorAt(9, 35, "for the tunnel, smtp-starttls and imap-starttls modes")));
  EXPECT_THAT(d, Contains(ErrorAt(9, 62, "max_connections applies to L4 listeners")));
  EXPECT_THAT(d, Contains(ErrorAt(11, 5, "is an L4 upstream (address)")));
  EXPECT_THAT(errors_only(d), SizeIs(4));
}

TEST(L4Listeners, l4_address_is_host_and_port_and_excludes_url) {
  const std::string t = yaml(R"(
upstreams:
  a: { address: "mail.example", ca_file: ca.pem, environment: test, purpose: mssante }
  b: { address: "smtp://mail.example:587", ca_file: ca.pem, environment: test, purpose: mssante }
  c: { address: "mail.example:587", url: "https://x.example", ca_file: ca.pem, environment: test, purpose: mssante }
  d: { address: "::1:143", ca_file: ca.pem, environment: test, purpose: mssante }
listeners:
  - { name: ris, port: 8080 }
)");
  auto d = load_errors(t);
  EXPECT_THAT(d, Contains(ErrorAt(2, 17, "the port is required")));
  EXPECT_THAT(d, Contains(ErrorAt(3, 17, "without a scheme")));
  EXPECT_THAT(d, Contains(ErrorAt(4, 17, "either url")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 17, "in brackets")));
  EXPECT_THAT(errors_only(d), SizeIs(4));
}

TEST(L4Listeners, tls_towards_the_client_is_accepted_on_every_l4_mode_and_starttls_is_required_by_default) {
  for (const char* mode : {"tunnel", "smtp-starttls", "imap-starttls"}) {
    auto r = load_ok(kBase + "  - { name: t, port: 1, mode: " + mode +
                     ", tenant: \"312345678200002\", upstream: mss-imap, tls: { cert: c.pem, key: k.pem } }\n");
    ASSERT_TRUE(r.config) << mode;
    const Listener& l = r.config->listeners.back();
    ASSERT_TRUE(l.tls.has_value()) << mode;
    EXPECT_TRUE(l.tls->require_starttls) << mode;
  }
  auto r = load_ok(kBase + "  - { name: t, port: 1, mode: smtp-starttls, tenant: \"312345678200002\","
                           " upstream: mss-imap, tls: { cert: c.pem, key: k.pem, require_starttls: false } }\n");
  ASSERT_TRUE(r.config);
  EXPECT_FALSE(r.config->listeners.back().tls->require_starttls);
}

TEST(L4Listeners, require_starttls_on_a_listener_that_speaks_tls_from_the_first_byte_is_refused) {
  // Control above: the same key on an smtp-starttls listener loads.
  auto d = load_errors(kBase + "  - { name: t, port: 1, mode: tunnel, tenant: \"312345678200002\", upstream: mss-imap,"
                               " tls: { cert: c.pem, key: k.pem, require_starttls: true } }\n");
  EXPECT_THAT(d, Contains(ErrorAt(8, 136, "applies to smtp-starttls and imap-starttls listeners only")));
  EXPECT_THAT(errors_only(d), SizeIs(1));
}

}  // namespace
}  // namespace orgproxy::config::test
