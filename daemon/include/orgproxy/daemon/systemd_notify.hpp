// The sd_notify(3) datagram protocol, spoken directly (no libsystemd dependency): READY=1 once every
// listener is bound and every identity checked, RELOADING=1 / READY=1 around a reload, STOPPING=1, and
// WATCHDOG=1 pings (systemd/orgproxy.service is Type=notify with WatchdogSec).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace orgproxy::daemon {

/// Sends `state` (newline-separated assignments) to $NOTIFY_SOCKET (a path, or '@' for the abstract
/// namespace). Returns false when there is no socket or the send fails; never throws.
bool systemd_notify(std::string_view state);

/// The watchdog period from $WATCHDOG_USEC when it is meant for this process ($WATCHDOG_PID absent or
/// equal to getpid()); nullopt otherwise.
std::optional<std::chrono::microseconds> systemd_watchdog_period();

}  // namespace orgproxy::daemon
