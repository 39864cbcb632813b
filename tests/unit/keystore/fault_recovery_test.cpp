// Field case C19: lost sessions, lost logins, stale key handles, device errors and absent tokens are recovered
// without a restart, through the project's fault-injecting PKCS#11 module in front of SoftHSMv2.
#include <atomic>
#include <cmath>
#include <chrono>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fault_world.hpp"

namespace orgproxy::keystore::test {
namespace {

using Clock = std::chrono::steady_clock;
using ::testing::HasSubstr;
using ::testing::Not;

struct Loaded {
  std::shared_ptr<Keystore> keystore;
  IdentityPtr a, b;
};

Loaded open_and_load(FaultWorld& f) {
  Loaded l;
  l.keystore = Keystore::open(f.options());
  auto loads = l.keystore->load_identities({f.spec_a, f.spec_b});
  EXPECT_EQ(loads.at(0).error, "");
  EXPECT_EQ(loads.at(1).error, "");
  l.a = loads.at(0).identity;
  l.b = loads.at(1).identity;
  return l;
}

std::uint64_t recoveries(const Keystore& k, const std::string& reason) {
  auto s = k.stats();
  auto it = s.recoveries.find(reason);
  return it == s.recoveries.end() ? 0 : it->second;
}

TEST(FaultRecovery, session_handle_invalid_on_sign_init_is_recovered_by_a_new_session_and_one_retry) {
  FaultWorld f;
  LogCapture log;
  auto l = open_and_load(f);
  ASSERT_TRUE(l.a && l.b);
  // Positive control: the shim forwards faithfully, and nothing needed recovering.
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(recoveries(*l.keystore, "session_lost"), 0u);
  const int sign_inits = f.shim_calls("C_SignInit", "orgproxy");

  f.command("fail C_SignInit CKR_SESSION_HANDLE_INVALID 1 token=orgproxy");
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(recoveries(*l.keystore, "session_lost"), 1u);
  EXPECT_EQ(f.shim_calls("C_SignInit", "orgproxy"), sign_inits + 2);  // the failed one + exactly one retry
  EXPECT_EQ(f.shim_calls("C_FindObjectsInit", "orgproxy"), 2);        // the load + one key look-up
  const KeystoreStats stats = l.keystore->stats();
  EXPECT_EQ(stats.sign_errors.size(), 0u);
  // Two successful signs (the recovered one counts once), with durations in the histogram.
  EXPECT_EQ(stats.signs, 2u);
  EXPECT_GT(stats.sign_seconds_sum, 0.0);
  ASSERT_FALSE(stats.sign_seconds_buckets.empty());
  EXPECT_EQ(stats.sign_seconds_buckets.back(), 2u);
  EXPECT_TRUE(std::isinf(stats.sign_seconds_bounds.back()));
  EXPECT_TRUE(l.a->usable());
  EXPECT_THAT(log.text(), HasSubstr("session_lost"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kUserPin)));
}

TEST(FaultRecovery, a_fault_that_persists_fails_the_sign_after_exactly_one_retry_and_no_loop) {
  FaultWorld f;
  auto l = open_and_load(f);
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.a), "");  // positive control
  const int sign_inits = f.shim_calls("C_SignInit", "orgproxy");
  f.command("fail C_SignInit CKR_SESSION_HANDLE_INVALID 50 token=orgproxy");
  EXPECT_NE(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(f.shim_calls("C_SignInit", "orgproxy"), sign_inits + 2);
  EXPECT_EQ(l.keystore->stats().sign_errors["CKR_SESSION_HANDLE_INVALID"], 1u);
  EXPECT_TRUE(l.a->usable()) << "a session fault is not an absent token";
  f.command("");  // the fault ends: the next sign works
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.a), "");
}

TEST(FaultRecovery, each_worker_thread_fails_at_most_one_sign_when_every_session_dies_at_once) {
  FaultWorld f;
  auto l = open_and_load(f);
  constexpr int kThreads = 4, kSigns = 25;
  // Warm the pool so several sessions exist, then kill them all as a restarted PKCS#11 daemon would.
  std::vector<std::thread> warm;
  for (int t = 0; t < kThreads; ++t) warm.emplace_back([&] { (void)sign_and_verify(*l.keystore, *l.a); });
  for (auto& t : warm) t.join();
  const int logins = f.shim_calls("C_Login", "orgproxy");
  f.command("reinit");
  std::atomic<int> max_failures{0}, total_ok{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t)
    workers.emplace_back([&] {
      int failures = 0;
      for (int i = 0; i < kSigns; ++i) {
        if (sign_and_verify(*l.keystore, *l.a).empty()) ++total_ok;
        else ++failures;
      }
      int seen = max_failures.load();
      while (failures > seen && !max_failures.compare_exchange_weak(seen, failures)) {}
    });
  for (auto& t : workers) t.join();
  EXPECT_LE(max_failures.load(), 1);
  EXPECT_GE(total_ok.load(), kThreads * (kSigns - 1));
  EXPECT_GE(recoveries(*l.keystore, "session_lost"), 1u);
  // The re-initialised module forgot the login: it was redone, once per recovery, not once per thread.
  EXPECT_GE(f.shim_calls("C_Login", "orgproxy"), logins + 1);
  EXPECT_LE(f.shim_calls("C_Login", "orgproxy"), logins + 2);
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.b), "") << "the other token recovered too (same module)";
}

TEST(FaultRecovery, logout_on_the_real_module_is_recovered_by_logging_in_again) {
  FaultWorld f;
  LogCapture log;
  auto l = open_and_load(f);
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  const int logins = f.shim_calls("C_Login", "orgproxy");
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(f.shim_calls("C_Login", "orgproxy"), logins) << "no login while the login holds (control)";

  // The libp11 failure: C_SignInit answers CKR_USER_NOT_LOGGED_IN, and the module did forget the login.
  f.command("logout token=orgproxy\nfail C_SignInit CKR_USER_NOT_LOGGED_IN 1 token=orgproxy");
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(recoveries(*l.keystore, "login_lost"), 1u);
  EXPECT_EQ(f.shim_calls("C_Login", "orgproxy"), logins + 1);

  // SoftHSM itself, once logged out, forgets the handles of private objects (CKR_OBJECT_HANDLE_INVALID):
  // the same recovery (login, key looked up again) covers it.
  f.command("logout token=orgproxy");
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(f.shim_calls("C_Login", "orgproxy"), logins + 2);
  EXPECT_EQ(l.keystore->stats().sign_errors.size(), 0u);
  EXPECT_THAT(log.text(), Not(HasSubstr(kUserPin)));
}

TEST(FaultRecovery, key_handle_invalid_is_recovered_by_one_key_search_and_device_error_by_a_new_session) {
  FaultWorld f;
  auto l = open_and_load(f);
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  const int searches = f.shim_calls("C_FindObjectsInit", "orgproxy");
  f.command("fail C_SignInit CKR_KEY_HANDLE_INVALID 1 token=orgproxy");
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(recoveries(*l.keystore, "key_handle_invalid"), 1u);
  EXPECT_EQ(f.shim_calls("C_FindObjectsInit", "orgproxy"), searches + 1);
  // Later signs use the kept (new) handle: no search per sign.
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(f.shim_calls("C_FindObjectsInit", "orgproxy"), searches + 1);

  f.command("fail C_Sign CKR_DEVICE_ERROR 1 token=orgproxy");
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(recoveries(*l.keystore, "device_error"), 1u);
  EXPECT_TRUE(l.a->usable());
}

TEST(FaultRecovery, absent_token_fails_fast_other_tokens_keep_signing_and_it_comes_back_without_restart) {
  FaultWorld f;
  LogCapture log;
  auto l = open_and_load(f);
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.b), "");
  const int logins = f.shim_calls("C_Login", "orgproxy");

  f.command("absent 3 token=orgproxy");
  const auto outage_start = Clock::now();
  EXPECT_NE(sign_and_verify(*l.keystore, *l.a), "");  // the sign that finds the token gone
  EXPECT_FALSE(l.a->usable());
  EXPECT_TRUE(l.b->usable());
  int fast_failures = 0;
  while (Clock::now() - outage_start < std::chrono::milliseconds(1500)) {
    const auto t0 = Clock::now();
    EXPECT_NE(sign_and_verify(*l.keystore, *l.a), "");
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(200)) << "a failure during the outage must be fast";
    EXPECT_EQ(sign_and_verify(*l.keystore, *l.b), "") << "the other token keeps working";
    ++fast_failures;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(fast_failures, 5);

  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!l.a->usable() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(l.a->usable()) << "the re-probe must bring the token back";
  EXPECT_GE(Clock::now() - outage_start, std::chrono::milliseconds(2900));
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(recoveries(*l.keystore, "token_absent"), 1u);
  EXPECT_EQ(recoveries(*l.keystore, "token_returned"), 1u);
  // Login only once the token answered again; no attempt while it was absent.
  EXPECT_EQ(f.shim_calls("C_Login", "orgproxy"), logins + 1);
  // Backoff: a few probes over the ~3 s outage, not a tight loop.
  EXPECT_LE(f.shim_calls("C_GetTokenInfo", "orgproxy"), 15);
  EXPECT_THAT(log.text(), HasSubstr("token marked unavailable"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kUserPin)));
}

TEST(FaultRecovery, user_already_logged_in_from_c_login_is_success) {
  FaultWorld f;
  auto first = open_and_load(f);
  ASSERT_EQ(sign_and_verify(*first.keystore, *first.a), "");
  EXPECT_EQ(recoveries(*first.keystore, "already_logged_in"), 0u);  // control: the first login was a real one
  // A second keystore of the same process finds the tokens logged in already (PKCS#11 login is per process).
  auto second = open_and_load(f);
  ASSERT_TRUE(second.a);
  EXPECT_GE(recoveries(*second.keystore, "already_logged_in"), 1u);
  EXPECT_EQ(sign_and_verify(*second.keystore, *second.a), "");
  EXPECT_EQ(sign_and_verify(*first.keystore, *first.a), "");
}

TEST(FaultRecovery, a_pin_refused_while_recovering_is_never_tried_again) {
  FaultWorld f;
  LogCapture log;
  auto l = open_and_load(f);
  ASSERT_EQ(sign_and_verify(*l.keystore, *l.a), "");  // positive control
  const int logins = f.shim_calls("C_Login", "orgproxy");
  f.command("logout token=orgproxy\nfail C_Login CKR_PIN_INCORRECT 100 token=orgproxy");
  EXPECT_NE(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_FALSE(l.a->usable());
  for (int i = 0; i < 5; ++i) EXPECT_NE(sign_and_verify(*l.keystore, *l.a), "");
  EXPECT_EQ(f.shim_calls("C_Login", "orgproxy"), logins + 1) << "a refused PIN is tried once, never again";
  EXPECT_THAT(log.text(), HasSubstr("not retried"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kUserPin)));
  EXPECT_EQ(sign_and_verify(*l.keystore, *l.b), "") << "the other token's login is unaffected";
}

}  // namespace
}  // namespace orgproxy::keystore::test
