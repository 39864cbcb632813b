// One downstream (RIS) HTTP/1.1 connection: keep-alive loop of strictly framed requests, each selected,
// routed and forwarded (DESIGN.md data flow).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace orgproxy::daemon {

class Worker;
struct ListenerSlot;

/// Serves `socket` until the client closes, an idle/header deadline passes, an error closes it, or the
/// worker shuts down. Never throws.
boost::asio::awaitable<void> run_downstream_session(Worker& worker, ListenerSlot& slot,
                                                    boost::asio::ip::tcp::socket socket);

}  // namespace orgproxy::daemon
