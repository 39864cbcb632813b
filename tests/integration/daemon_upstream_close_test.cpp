// Issue 5 point 6: an upstream connection the daemon lets go (idle expiry in its pool, reload, shutdown) ends
// its TLS session with close_notify (RFC 8446 §6.1) rather than a bare FIN, within a bounded time; the upstream
// then tells a clean close from a truncation attack.
#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "daemon_http_world.hpp"

namespace orgproxy::daemon_it {
namespace {

class DaemonUpstreamClose : public DaemonHttp {
 protected:
  // Members, not test locals: the upstream's thread (joined in TearDown) may still hold them.
  std::promise<boost::system::error_code> closed_;
  std::future<boost::system::error_code> closed_future_ = closed_.get_future();
};

TEST_F(DaemonUpstreamClose, an_idle_pooled_connection_expiring_is_closed_with_close_notify) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  up_ = std::make_unique<ScriptedUpstream>(
      server_.chain.string(), server_.key.string(), pki_->ca_bundle_pem().string(),
      std::vector<ScriptedUpstream::Script>{[&](ScriptConn& c) {
        c.read_head();
        c.write(kOk);
        closed_.set_value(c.wait_for_close());  // the proxy keeps it idle, then its pool lets it go
      }});
  auto cfg = base_config(up_->url("/base"));
  cfg.workers = 1;
  cfg.upstreams[0].idle_timeout = "1s";  // the pool sweeper retires it within about a second after that
  add_tenant(cfg, kA, {{"dmp", a}});
  proxy_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy_->port(), 30s);
  auto r = client.request(get(kA, "/dmp/x"));
  ASSERT_EQ(r.status, 200) << proxy_->log();
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(closed_future_.wait_for(15s), std::future_status::ready) << "the idle connection was never closed\n"
                                                                    << proxy_->log();
  const auto how = closed_future_.get();
  EXPECT_EQ(how, boost::asio::error::eof) << "closed without close_notify: " << how.message() << "\n"
                                          << proxy_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

TEST_F(DaemonUpstreamClose, pooled_connections_are_closed_with_close_notify_at_shutdown) {
  start({[&](ScriptConn& c) {
    c.read_head();
    c.write(kOk);
    closed_.set_value(c.wait_for_close());
  }});
  tk::HttpClient client("127.0.0.1", proxy_->port(), 30s);
  ASSERT_EQ(client.request(get(kA, "/dmp/x")).status, 200) << proxy_->log();
  proxy_->stop(15s);  // SIGTERM: graceful shutdown empties the pool
  ASSERT_EQ(closed_future_.wait_for(15s), std::future_status::ready) << proxy_->log();
  EXPECT_EQ(closed_future_.get(), boost::asio::error::eof) << proxy_->log();
}

}  // namespace
}  // namespace orgproxy::daemon_it
