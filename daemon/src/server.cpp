#include "orgproxy/daemon/server.hpp"

#include <atomic>
#include <iostream>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>

#include "orgproxy/config/load.hpp"
#include "orgproxy/config/print.hpp"
#include "orgproxy/daemon/admin_server.hpp"
#include "orgproxy/daemon/metrics.hpp"
#include "orgproxy/daemon/runtime.hpp"
#include "orgproxy/daemon/systemd_notify.hpp"
#include "orgproxy/daemon/worker.hpp"
#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

bool needs_keystore(const config::Config& cfg) {
  if (!cfg.pkcs11.modules.empty()) return true;
  for (auto const& t : cfg.tenants)
    if (!t.identities.empty()) return true;
  for (auto const& l : cfg.listeners)
    if (l.tls && l.tls->key.starts_with("pkcs11:")) return true;
  return false;
}

keystore::KeystoreOptions keystore_options(const config::Config& cfg) {
  keystore::KeystoreOptions o;
  for (auto const& m : cfg.pkcs11.modules) o.modules.push_back({m.name, m.path});
  o.pin_file = cfg.pkcs11.pin_file;
  o.allow_pin_value = cfg.pkcs11.allow_pin_value;
  o.allow_key_files = cfg.pkcs11.allow_key_files;
  o.allow_extractable = cfg.pkcs11.allow_extractable_keys;
  o.max_concurrent_signs = cfg.pkcs11.max_concurrent_signs;
  return o;
}

void apply_log_level(const config::Config& cfg) {
  auto level = spdlog::level::from_str(cfg.settings.log_level);
  if (level == spdlog::level::off && cfg.settings.log_level != "off") level = spdlog::level::info;
  spdlog::set_level(level);
}

// Loads a config, printing its diagnostics to the log; nullptr when it has errors.
config::ConfigPtr load_logged(const std::filesystem::path& path) {
  try {
    auto result = config::load_config(path);
    for (auto const& w : result.warnings) spdlog::warn("{}", w.str());
    return result.config;
  } catch (const config::ConfigError& e) {
    for (auto const& d : e.diagnostics()) spdlog::error("{}", d.str());
    spdlog::error("configuration {} has {} problem(s)", path.string(), e.diagnostics().size());
  } catch (const std::exception& e) {
    spdlog::error("configuration {}: {}", path.string(), e.what());
  }
  return nullptr;
}

// Sends the access log to a file when `logging.access_log` names one (before any request is served: the
// access logger is looked up once). Throws spdlog::spdlog_ex when the file cannot be opened.
void setup_access_log(const config::LoggingSettings& logging) {
  // Flushed once a second rather than per line, whatever the destination: one write(2) per request would
  // cost more than the rest of the request's bookkeeping. At most a second of lines is lost on a crash;
  // a clean exit flushes (spdlog::shutdown in main).
  spdlog::flush_every(std::chrono::seconds(1));
  if (logging.access_log.empty() || logging.access_log == "stdout") {
    if (auto stdout_access = spdlog::get("access")) stdout_access->flush_on(spdlog::level::warn);
    return;
  }
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (logging.rotate_size > 0)
    sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
        logging.access_log, static_cast<std::size_t>(logging.rotate_size), logging.rotate_count ? logging.rotate_count : 5);
  else
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(logging.access_log);
  auto logger = std::make_shared<spdlog::logger>("access", sink);
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::info);
  spdlog::drop("access");
  spdlog::register_logger(logger);
}

bool same_listeners(const config::Config& a, const config::Config& b) {
  if (a.listeners.size() != b.listeners.size()) return false;
  for (std::size_t i = 0; i < a.listeners.size(); ++i) {
    auto const& x = a.listeners[i];
    auto const& y = b.listeners[i];
    if (x.name != y.name || x.address != y.address || x.port != y.port) return false;
  }
  return true;
}

class Server {
 public:
  int run(const std::filesystem::path& config_path);

 private:
  void reload();
  void shutdown();
  void watchdog_tick();

  std::filesystem::path config_path_;
  std::shared_ptr<keystore::Keystore> keystore_;
  RuntimeSlot runtime_;
  std::uint64_t generation_ = 1;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  asio::io_context control_{1};
  asio::steady_timer watchdog_timer_{control_};
  std::chrono::microseconds watchdog_period_{0};
  std::vector<std::uint64_t> last_heartbeats_;
  std::unique_ptr<AdminServer> admin_;
};

int Server::run(const std::filesystem::path& config_path) {
  config_path_ = config_path;
  config::ConfigPtr cfg = load_logged(config_path);
  if (!cfg) return 1;
  apply_log_level(*cfg);
  try {
    setup_access_log(cfg->logging);
  } catch (const std::exception& e) {
    spdlog::critical("access log {}: {}", cfg->logging.access_log, e.what());
    return 1;
  }

  try {
    if (needs_keystore(*cfg)) keystore_ = keystore::Keystore::open(keystore_options(*cfg));
  } catch (const std::exception& e) {
    spdlog::critical("keystore: {}", e.what());
    return 1;
  }

  std::shared_ptr<const Runtime> rt;
  try {
    std::vector<std::string> problems;
    rt = Runtime::build(cfg, keystore_, generation_, problems);
    for (auto const& p : problems) spdlog::error("{}", p);
    spdlog::info("identities: {} usable, {} unavailable", rt->identities_loaded(), rt->identities_unavailable());
  } catch (const std::exception& e) {
    spdlog::critical("start refused: {}", e.what());
    return 1;
  }
  runtime_.publish(rt);
  metrics().set_per_tenant_labels(!cfg->admin || cfg->admin->per_tenant_metrics);
  metrics().config_loaded(false);

  // Signals are taken over before any listener binds: a client (or a test harness) that sees the port open
  // may send SIGHUP at once, and the default action would kill the daemon. Asio queues a signal that
  // arrives before control_ runs and delivers it once it does.
  asio::signal_set signals(control_, SIGTERM, SIGINT, SIGHUP);
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      reload();
      signals.async_wait(on_signal);
      return;
    }
    spdlog::info("signal {}: graceful shutdown", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    shutdown();
  };
  signals.async_wait(on_signal);

  unsigned n = cfg->settings.workers ? cfg->settings.workers : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(i, runtime_));

  for (std::size_t li = 0; li < cfg->listeners.size(); ++li) {
    auto const& l = rt->config().listeners[li];
    boost::system::error_code ec;
    auto address = asio::ip::make_address(l.address, ec);
    if (ec) {
      spdlog::critical("listener {}: address {} is not an IP address", l.name, l.address);
      return 1;
    }
    std::uint16_t port = l.port;
    try {
      for (auto& w : workers_) port = w->bind(l, tcp::endpoint(address, port));
    } catch (const boost::system::system_error& e) {
      spdlog::critical("listener {}: cannot listen on {}:{}: {}", l.name, l.address, l.port, e.code().message());
      return 1;
    }
    if (address.is_loopback() && cfg->clients.empty())
      spdlog::info("listener {} on {}:{}: loopback without client rules: local clients are allowed", l.name,
                   l.address, port);
    else
      spdlog::info("listener {} on {}:{}", l.name, l.address, port);
  }

  if (cfg->admin) {
    try {
      admin_ = std::make_unique<AdminServer>(*cfg->admin, runtime_, keystore_);
    } catch (const std::exception& e) {
      spdlog::critical("admin listener on {}:{}: {}", cfg->admin->address, cfg->admin->port, e.what());
      return 1;
    }
    spdlog::info("admin listener on {}:{}", cfg->admin->address, admin_->port());
  }
  for (auto& w : workers_) {
    w->start();
    threads_.emplace_back([w = w.get()] { w->run(); });
  }
  if (admin_) admin_->start();
  spdlog::info("ready: {} worker(s), {} listener(s), {} tenant(s), {} route(s)", n, cfg->listeners.size(),
               cfg->tenants.size(), cfg->routes.size());
  systemd_notify("READY=1\nSTATUS=serving");
  if (auto period = systemd_watchdog_period()) {
    watchdog_period_ = *period;
    last_heartbeats_.assign(workers_.size(), 0);
    watchdog_tick();
  }

  control_.run();
  for (auto& t : threads_) t.join();
  spdlog::info("stopped");
  return 0;
}

void Server::reload() {
  spdlog::info("SIGHUP: reloading {}", config_path_.string());
  systemd_notify("RELOADING=1\nMONOTONIC_USEC=" +
                 std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count()));
  struct ReadyAgain {
    ~ReadyAgain() { systemd_notify("READY=1"); }
  } ready_again;
  config::ConfigPtr cfg = load_logged(config_path_);
  if (!cfg) {
    spdlog::error("reload rejected: the previous configuration keeps serving");
    metrics().config_reload_failed();
    return;
  }
  auto old = runtime_.load();
  if (!same_listeners(old->config(), *cfg))
    spdlog::warn("reload: listener addresses/ports changed; they take effect at the next restart");
  try {
    std::vector<std::string> problems;
    auto rt = Runtime::build(cfg, keystore_, ++generation_, problems, old.get());
    for (auto const& p : problems) spdlog::error("{}", p);
    apply_log_level(*cfg);
    runtime_.publish(rt);
    metrics().config_loaded(true);
    spdlog::info("reloaded: generation {}, identities: {} usable, {} unavailable", rt->generation(),
                 rt->identities_loaded(), rt->identities_unavailable());
  } catch (const std::exception& e) {
    spdlog::error("reload rejected: {}; the previous configuration keeps serving", e.what());
    metrics().config_reload_failed();
  }
}

void Server::watchdog_tick() {
  // WATCHDOG=1 only when every worker's event loop ran a posted heartbeat since the last tick: a worker
  // stuck in a handler (or a dead token call) stops the pings and lets systemd restart the daemon.
  bool all_alive = true;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    auto beats = workers_[i]->heartbeats();
    if (beats == last_heartbeats_[i] && beats != 0) all_alive = false;
    last_heartbeats_[i] = beats;
    workers_[i]->post_heartbeat();
  }
  if (all_alive) systemd_notify("WATCHDOG=1");
  watchdog_timer_.expires_after(watchdog_period_ / 3);
  watchdog_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) watchdog_tick();
  });
}

void Server::shutdown() {
  systemd_notify("STOPPING=1");
  watchdog_timer_.cancel();
  for (auto& w : workers_) w->begin_shutdown();
  auto grace = runtime_.load()->config().settings.shutdown_grace;
  auto deadline = std::chrono::steady_clock::now() + grace;
  // Polled from the control thread: in-flight requests finish on their own; stragglers are cut at the end
  // of the grace period.
  while (std::chrono::steady_clock::now() < deadline) {
    std::size_t active = 0;
    for (auto& w : workers_) active += w->active_sessions();
    if (active == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::size_t left = 0;
  for (auto& w : workers_) left += w->active_sessions();
  if (left) spdlog::warn("shutdown grace over: closing {} connection(s) still open", left);
  for (auto& w : workers_) w->stop();
  if (admin_) admin_->stop();
  control_.stop();
}

}  // namespace

int run_server(const std::filesystem::path& config_path) {
  Server server;
  return server.run(config_path);
}

int check_config(const std::filesystem::path& config_path, bool offline, bool print, std::ostream& out,
                 std::ostream& err) {
  config::ConfigPtr cfg;
  try {
    auto result = config::load_config(config_path);
    for (auto const& w : result.warnings) err << w.str() << '\n';
    cfg = result.config;
  } catch (const config::ConfigError& e) {
    for (auto const& d : e.diagnostics()) err << d.str() << '\n';
    err << config_path.string() << ": configuration test failed (" << e.diagnostics().size() << " problem(s))\n";
    return 1;
  }
  if (print) out << config::print_effective(*cfg);
  if (const auto missing = config::check_referenced_files(*cfg); !missing.empty()) {
    for (auto const& d : missing) err << d.str() << '\n';
    err << config_path.string() << ": configuration test failed (" << missing.size() << " problem(s))\n";
    return 1;
  }
  if (offline) {
    out << config_path.string() << ": configuration syntax is ok (offline: token and identities not checked)\n";
    return 0;
  }
  std::shared_ptr<keystore::Keystore> ks;
  try {
    if (needs_keystore(*cfg)) ks = keystore::Keystore::open(keystore_options(*cfg));
  } catch (const std::exception& e) {
    err << "keystore: " << e.what() << '\n';
    err << config_path.string() << ": configuration test failed\n";
    return 1;
  }
  std::vector<std::string> problems;
  try {
    auto rt = Runtime::build(cfg, ks, 1, problems);
    for (auto const& p : problems) err << p << '\n';
    if (problems.empty()) {
      out << config_path.string() << ": configuration test is successful (" << rt->identities_loaded()
          << " identities usable)\n";
      return 0;
    }
  } catch (const std::exception& e) {
    for (auto const& p : problems) err << p << '\n';
    err << e.what() << '\n';
  }
  err << config_path.string() << ": configuration test failed\n";
  return 1;
}

}  // namespace orgproxy::daemon
