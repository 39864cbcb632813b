// Internal: small helpers shared by the coroutine-based data path (HTTP forwarding, L4 tunnels).
#pragma once

#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace orgproxy::daemon {

/// Completion token for co_await that returns (error_code, ...) as a tuple instead of throwing: the data
/// path maps every failure to an error code or an answer, never to an exception.
inline constexpr auto nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);

/// Milliseconds (fractional) elapsed since `start`, for access-log and metric durations.
inline double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace orgproxy::daemon
