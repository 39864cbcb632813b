// Deadlines for the L4 listeners' sessions: a timer that runs `on_expire` (closing the sockets, which ends
// every pending operation on them) once the deadline passes without being pushed back. Safe to destroy
// while its handler is queued: the handler then does nothing.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace orgproxy::daemon {

class L4Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  /// Arms the deadline `after` from now; `on_expire` runs on the executor's thread at most once.
  L4Deadline(const boost::asio::any_io_executor& ex, std::chrono::milliseconds after, std::function<void()> on_expire)
      : state_(std::make_shared<State>(ex, std::move(on_expire))) {
    state_->at = Clock::now() + after;
    arm(state_);
  }
  L4Deadline(const L4Deadline&) = delete;
  L4Deadline& operator=(const L4Deadline&) = delete;
  ~L4Deadline() {
    state_->alive = false;
    state_->timer.cancel();
  }

  /// Moves the deadline to `after` from now (activity on an idle timeout, a new phase of a setup).
  void extend(std::chrono::milliseconds after) { state_->at = Clock::now() + after; }
  /// Whether the deadline passed (and on_expire ran).
  bool expired() const { return state_->fired; }

 private:
  struct State {
    State(const boost::asio::any_io_executor& ex, std::function<void()> f) : timer(ex), on_expire(std::move(f)) {}
    boost::asio::steady_timer timer;
    std::function<void()> on_expire;
    Clock::time_point at;
    bool alive = true;
    bool fired = false;
  };
  static void arm(const std::shared_ptr<State>& s) {
    s->timer.expires_at(s->at);
    s->timer.async_wait([s](const boost::system::error_code& ec) {
      if (ec || !s->alive || s->fired) return;
      if (Clock::now() < s->at) return arm(s);  // pushed back meanwhile: wait for the new time
      s->fired = true;
      s->on_expire();
    });
  }
  std::shared_ptr<State> state_;
};

}  // namespace orgproxy::daemon
