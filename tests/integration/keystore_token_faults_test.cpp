// Issue 3 point 4 and field cases C19 / C21 at the daemon's level: token faults commanded through the
// project's fault-injecting PKCS#11 module while the real daemon serves two sites, each keyed in its own
// SoftHSM token, against the real nginx. What a site sees is the HTTP answer; what the token saw is the
// shim's call log.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "keystore_daemon_world.hpp"
#include "orgproxy/testkit/child_process.hpp"

namespace orgproxy::keystore_it {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

/// Asks until the answer's status is `status` or `timeout` passes; returns the last answer.
tk::HttpResponse get_until(std::uint16_t port, const std::string& tenant, const std::string& path, int status,
                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  tk::HttpResponse r;
  for (;;) {
    r = get(port, tenant, path);
    if (r.status == status || std::chrono::steady_clock::now() > deadline) return r;
    std::this_thread::sleep_for(200ms);
  }
}

class KeystoreTokenFaults : public KeystoreDaemonWorld {
 protected:
  void start_two_sites(int upstreams = 3) {
    site_a_ = make_site(*token_a_, std::string(tk::kSiteA));
    site_b_ = make_site(*token_b_, std::string(tk::kSiteB), tk::KeyType::ec_p256);
    nginx_ = start_nginx(tk::TlsProtocols::both);
    daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"),
                                                    config(nginx_->url("/svc"), {site_a_, site_b_}, upstreams),
                                                    start());
  }
  std::string diagnostics() const {
    return "\n--- daemon ---\n" + daemon_->log() + "\n--- shim ---\n" + tk::read_file(shim_log_);
  }

  TokenSite site_a_, site_b_;
  std::unique_ptr<tk::NginxUpstream> nginx_;
  std::unique_ptr<tk::OrgproxyProcess> daemon_;
};

TEST_F(KeystoreTokenFaults, absent_token_gives_its_sites_503_while_the_other_tokens_sites_keep_200_and_it_resumes_without_restart) {
  start_two_sites();
  const std::uint16_t port = daemon_->port();
  // Positive control: both sites reach the upstream with their own certificate.
  auto a = get(port, site_a_.tenant, "/dmp/before");
  ASSERT_EQ(a.status, 200) << a.header("X-Orgproxy-Error") << diagnostics();
  EXPECT_EQ(a.header("X-Client-DN"), site_a_.dn);
  ASSERT_EQ(get(port, site_b_.tenant, "/dmp/before").status, 200) << diagnostics();
  const int logins_a = shim_calls("C_Login", "Cabinet A");

  // Token A is pulled out (its sessions, hence its login, go with it) until the rules change again.
  command("absent 3600 token=Cabinet%20A");
  // Through an upstream A has not used yet: a full handshake, so a signature the token cannot make.
  auto during = get(port, site_a_.tenant, "/dmp2/during");
  EXPECT_EQ(during.status, 503) << diagnostics();
  EXPECT_EQ(during.header("X-Orgproxy-Error"), "identity_unavailable");
  // Once the token is known absent, A's pooled connection is not used either: the site is unavailable.
  auto pooled = get(port, site_a_.tenant, "/dmp/during");
  EXPECT_EQ(pooled.status, 503);
  EXPECT_EQ(pooled.header("X-Orgproxy-Error"), "identity_unavailable");
  // The other token's site keeps working, new handshakes included.
  auto b = get(port, site_b_.tenant, "/dmp2/during");
  EXPECT_EQ(b.status, 200) << b.header("X-Orgproxy-Error") << diagnostics();
  EXPECT_EQ(b.header("X-Client-DN"), site_b_.dn);
  std::this_thread::sleep_for(1500ms);  // a few re-probes happen while the token is away
  EXPECT_EQ(get(port, site_a_.tenant, "/dmp2/during").status, 503);
  EXPECT_EQ(shim_calls("C_Login", "Cabinet A"), logins_a) << "no login is tried while the token is absent";

  // The token comes back: service resumes without a restart (a re-probe finds it and logs in once).
  command("");
  auto after = get_until(port, site_a_.tenant, "/dmp3/after", 200, 30s);
  ASSERT_EQ(after.status, 200) << after.header("X-Orgproxy-Error") << diagnostics();
  EXPECT_EQ(after.header("X-Client-DN"), site_a_.dn);
  EXPECT_EQ(get(port, site_a_.tenant, "/dmp2/after").status, 200);
  EXPECT_EQ(shim_calls("C_Login", "Cabinet A"), logins_a + 1) << diagnostics();
  EXPECT_EQ(get(port, site_b_.tenant, "/dmp3/after").status, 200);
  EXPECT_TRUE(daemon_->running());
  EXPECT_THAT(daemon_->log(), Not(HasSubstr(kUserPin)));
}

/// A fault of the token session, injected once on the next C_SignInit of token A (or, for "logout", a real
/// C_Logout on the module, so SoftHSM itself refuses the next sign).
struct SessionFault {
  const char* name;
  const char* rule;
  const char* ckr_hex;  ///< the CKR_ the failed C_SignInit returned, as the shim logs it
};
std::ostream& operator<<(std::ostream& out, const SessionFault& f) { return out << f.name; }

class KeystoreSessionFaults : public KeystoreTokenFaults, public ::testing::WithParamInterface<SessionFault> {};

TEST_P(KeystoreSessionFaults, fault_during_a_handshake_is_recovered_by_one_retry_and_the_request_succeeds) {
  const SessionFault& f = GetParam();
  start_two_sites();
  const std::uint16_t port = daemon_->port();
  ASSERT_EQ(get(port, site_a_.tenant, "/dmp/before").status, 200) << diagnostics();  // positive control
  const auto signs_before = shim_lines("C_SignInit", "Cabinet A");
  const int logins_before = shim_calls("C_Login", "Cabinet A");

  command(f.rule);
  auto r = get(port, site_a_.tenant, "/dmp2/fault");  // a fresh upstream: a full handshake signs
  ASSERT_EQ(r.status, 200) << r.header("X-Orgproxy-Error") << diagnostics();
  EXPECT_EQ(r.header("X-Client-DN"), site_a_.dn);

  // The token saw exactly one failed C_SignInit with that fault, then the retry that succeeded.
  const auto signs = shim_lines("C_SignInit", "Cabinet A");
  ASSERT_GE(signs.size(), signs_before.size() + 2) << diagnostics();
  const std::vector<std::string> fresh(signs.begin() + static_cast<std::ptrdiff_t>(signs_before.size()), signs.end());
  int failed = 0;
  for (const auto& line : fresh)
    if (line.find(" 0x0 ") == std::string::npos) {
      ++failed;
      EXPECT_THAT(line, HasSubstr(std::string(" ") + f.ckr_hex + " ")) << f.name;
    }
  EXPECT_EQ(failed, 1) << diagnostics();
  EXPECT_THAT(fresh[0], Not(HasSubstr(" 0x0 "))) << "the first sign after the fault is the failed one";
  EXPECT_THAT(fresh[1], HasSubstr(" 0x0 ")) << "and the retry succeeds";
  // A login is redone only when the token lost it.
  const int logins = shim_calls("C_Login", "Cabinet A") - logins_before;
  if (std::string(f.name) == "real_logout") EXPECT_EQ(logins, 1);
  else EXPECT_LE(logins, 1);
  EXPECT_EQ(get(port, site_a_.tenant, "/dmp3/after").status, 200);
  EXPECT_EQ(get(port, site_b_.tenant, "/dmp2/after").status, 200);
}

INSTANTIATE_TEST_SUITE_P(
    C19, KeystoreSessionFaults,
    ::testing::Values(
        SessionFault{"session_handle_invalid", "fail C_SignInit CKR_SESSION_HANDLE_INVALID 1 token=Cabinet%20A", "0xb3"},
        SessionFault{"session_closed", "fail C_SignInit CKR_SESSION_CLOSED 1 token=Cabinet%20A", "0xb0"},
        SessionFault{"user_not_logged_in", "fail C_SignInit CKR_USER_NOT_LOGGED_IN 1 token=Cabinet%20A", "0x101"},
        SessionFault{"device_error", "fail C_SignInit CKR_DEVICE_ERROR 1 token=Cabinet%20A", "0x30"},
        // SoftHSM hides private objects from a logged-out session: C_SignInit answers CKR_KEY_HANDLE_INVALID,
        // which the keystore recovers by checking the login and looking the key up again.
        SessionFault{"real_logout", "logout token=Cabinet%20A", "0x82"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace orgproxy::keystore_it
