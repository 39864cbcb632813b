// The worker pool's keying: nothing made under one (tenant, identity, upstream) is handed to another.
#include <gtest/gtest.h>

#include <openssl/ssl.h>

#include "orgproxy/daemon/keyed_pool.hpp"

namespace orgproxy::daemon {
namespace {

struct FakeConn {
  int serial;
};
using Pool = KeyedIdlePool<FakeConn>;
using namespace std::chrono_literals;

int identity_a = 1, identity_b = 2, identity_a2 = 3;
int upstream_dmp = 1, upstream_insi = 2;
const PoolKey key_a{"312345678200002", &identity_a, &upstream_dmp};
const PoolKey key_b{"498765432103017", &identity_b, &upstream_dmp};

TEST(KeyedPool, pool_never_reuses_connection_across_tenants) {
  Pool pool;
  auto now = Pool::Clock::now();
  ASSERT_TRUE(pool.release(key_a, std::make_unique<FakeConn>(FakeConn{1}), now + 60s, 8));
  EXPECT_EQ(pool.acquire(key_b, now), nullptr);
  auto back = pool.acquire(key_a, now);  // positive control: the owner gets it back
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->serial, 1);
  EXPECT_EQ(pool.acquire(key_a, now), nullptr);
}

TEST(KeyedPool, pool_never_reuses_connection_across_identities_or_upstreams_of_one_tenant) {
  Pool pool;
  auto now = Pool::Clock::now();
  const PoolKey renewed{"312345678200002", &identity_a2, &upstream_dmp};
  const PoolKey other_upstream{"312345678200002", &identity_a, &upstream_insi};
  pool.release(key_a, std::make_unique<FakeConn>(FakeConn{1}), now + 60s, 8);
  EXPECT_EQ(pool.acquire(renewed, now), nullptr);
  EXPECT_EQ(pool.acquire(other_upstream, now), nullptr);
  EXPECT_NE(pool.acquire(key_a, now), nullptr);
}

TEST(KeyedPool, tenant_is_compared_by_value_not_by_address) {
  Pool pool;
  auto now = Pool::Clock::now();
  std::string copy(key_a.tenant);
  pool.release(key_a, std::make_unique<FakeConn>(FakeConn{7}), now + 60s, 8);
  auto got = pool.acquire(PoolKey{copy, key_a.identity, key_a.upstream}, now);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->serial, 7);
}

TEST(KeyedPool, most_recent_connection_first_and_expired_ones_dropped) {
  Pool pool;
  auto now = Pool::Clock::now();
  pool.release(key_a, std::make_unique<FakeConn>(FakeConn{1}), now + 1s, 8);
  pool.release(key_a, std::make_unique<FakeConn>(FakeConn{2}), now + 60s, 8);
  EXPECT_EQ(pool.acquire(key_a, now)->serial, 2);
  EXPECT_EQ(pool.acquire(key_a, now + 2s), nullptr);  // #1 expired on the way
  EXPECT_EQ(pool.idle_total(), 0u);
}

TEST(KeyedPool, max_idle_per_key_is_enforced_per_key) {
  Pool pool;
  auto now = Pool::Clock::now();
  EXPECT_TRUE(pool.release(key_a, std::make_unique<FakeConn>(FakeConn{1}), now + 60s, 2));
  EXPECT_TRUE(pool.release(key_a, std::make_unique<FakeConn>(FakeConn{2}), now + 60s, 2));
  EXPECT_FALSE(pool.release(key_a, std::make_unique<FakeConn>(FakeConn{3}), now + 60s, 2));
  EXPECT_TRUE(pool.release(key_b, std::make_unique<FakeConn>(FakeConn{4}), now + 60s, 2));
  EXPECT_EQ(pool.idle_count(key_a), 2u);
  EXPECT_EQ(pool.idle_count(key_b), 1u);
}

TEST(KeyedPool, sweep_and_clear_drop_idle_connections) {
  Pool pool;
  auto now = Pool::Clock::now();
  pool.release(key_a, std::make_unique<FakeConn>(FakeConn{1}), now + 1s, 8);
  pool.release(key_b, std::make_unique<FakeConn>(FakeConn{2}), now + 60s, 8);
  pool.sweep(now + 2s);
  EXPECT_EQ(pool.idle_count(key_a), 0u);
  EXPECT_EQ(pool.idle_count(key_b), 1u);
  pool.clear();
  EXPECT_EQ(pool.idle_total(), 0u);
  EXPECT_EQ(pool.acquire(key_b, now), nullptr);
}

TEST(KeyedPool, global_cap_drops_the_least_recently_released_connection_of_any_key) {
  Pool pool;
  pool.set_max_idle_total(2);
  auto now = Pool::Clock::now();
  const PoolKey key_c{"381000000000010", &identity_a2, &upstream_insi};
  ASSERT_TRUE(pool.release(key_a, std::make_unique<FakeConn>(FakeConn{1}), now + 60s, 8));
  ASSERT_TRUE(pool.release(key_b, std::make_unique<FakeConn>(FakeConn{2}), now + 60s, 8));
  EXPECT_EQ(pool.idle_total(), 2u) << "positive control: up to the cap, everything is kept";
  // A's connection is used again and released after B's: B's is now the least recently released.
  auto again = pool.acquire(key_a, now);
  ASSERT_EQ(again->serial, 1);
  ASSERT_TRUE(pool.release(key_a, std::move(again), now + 60s, 8));
  ASSERT_TRUE(pool.release(key_c, std::make_unique<FakeConn>(FakeConn{3}), now + 60s, 8));
  EXPECT_EQ(pool.idle_total(), 2u);
  EXPECT_EQ(pool.idle_count(key_b), 0u) << "B's connection was the least recently released";
  // What is left is still only handed to its own key.
  EXPECT_EQ(pool.acquire(key_b, now), nullptr);
  EXPECT_EQ(pool.acquire(key_c, now)->serial, 3);
  EXPECT_EQ(pool.acquire(key_a, now)->serial, 1);
  EXPECT_EQ(pool.idle_total(), 0u);
}

TEST(KeyedPool, global_cap_holds_over_many_keys_and_zero_keeps_none) {
  Pool pool;
  pool.set_max_idle_total(100);
  auto now = Pool::Clock::now();
  std::vector<std::string> tenants;
  for (int i = 0; i < 5000; ++i) tenants.push_back("site-" + std::to_string(i));
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 5000; ++i)
      pool.release(PoolKey{tenants[i], &identity_a, &upstream_dmp}, std::make_unique<FakeConn>(FakeConn{i}),
                   now + 60s, 8);
  EXPECT_EQ(pool.idle_total(), 100u);
  // The survivors are the 100 most recent releases: the last 100 sites of the last round.
  EXPECT_EQ(pool.idle_count(PoolKey{tenants[4899], &identity_a, &upstream_dmp}), 0u);
  auto last = pool.acquire(PoolKey{tenants[4999], &identity_a, &upstream_dmp}, now);
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->serial, 4999);
  EXPECT_EQ(pool.acquire(PoolKey{tenants[4900], &identity_a, &upstream_dmp}, now)->serial, 4900);
  pool.set_max_idle_total(10);  // lowering the cap drops the oldest at once
  EXPECT_EQ(pool.idle_total(), 10u);
  EXPECT_NE(pool.acquire(PoolKey{tenants[4998], &identity_a, &upstream_dmp}, now), nullptr);
  pool.set_max_idle_total(0);
  EXPECT_EQ(pool.idle_total(), 0u);
  EXPECT_FALSE(pool.release(key_a, std::make_unique<FakeConn>(FakeConn{1}), now + 60s, 8));
  EXPECT_EQ(pool.acquire(key_a, now), nullptr);
}

TEST(KeyedPool, tls_session_is_offered_only_to_its_own_key) {
  Pool pool;
  SSL_SESSION* s = SSL_SESSION_new();
  ASSERT_NE(s, nullptr);
  pool.store_session(key_a, keystore::SslSessionPtr(s));
  EXPECT_EQ(pool.session(key_a), s);
  EXPECT_EQ(pool.session(key_b), nullptr);
  pool.forget_session(key_a);
  EXPECT_EQ(pool.session(key_a), nullptr);
}

TEST(KeyedPool, tls_session_past_its_lifetime_is_not_offered_and_is_swept) {
  Pool pool;
  SSL_SESSION* s = SSL_SESSION_new();
  ASSERT_NE(s, nullptr);
  const std::time_t made = std::time(nullptr);
  SSL_SESSION_set_time(s, static_cast<long>(made));
  SSL_SESSION_set_timeout(s, 7200);  // a TLS 1.3 ticket lifetime hint of 2 hours
  pool.store_session(key_a, keystore::SslSessionPtr(s));
  // Positive control: within its lifetime it is offered, and a sweep keeps it.
  EXPECT_EQ(pool.session(key_a, made + 7199), s);
  pool.sweep(Pool::Clock::now(), made + 7199);
  EXPECT_EQ(pool.session(key_a, made + 7199), s);
  // Past it: not offered, and the sweep frees it with its bucket.
  EXPECT_EQ(pool.session(key_a, made + 7200), nullptr);
  pool.sweep(Pool::Clock::now(), made + 7200);
  EXPECT_EQ(pool.session(key_a, made), nullptr);
}

}  // namespace
}  // namespace orgproxy::daemon
