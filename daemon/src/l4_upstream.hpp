// The upstream side of an L4 connection: TCP connect, the plaintext STARTTLS dialogue for SMTP/IMAP, the
// TLS handshake presenting the site's identity, capabilities asked again inside TLS.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "orgproxy/config/config.hpp"
#include "orgproxy/daemon/runtime.hpp"
#include "orgproxy/daemon/upstream_connection.hpp"
#include "tls_pipe.hpp"

namespace orgproxy::daemon {

struct L4Upstream {
  std::unique_ptr<TlsPipe> tls;  ///< ready to relay (nullptr on failure)
  ErrorCode error = ErrorCode::none;
  std::string detail;            ///< for the log
  std::string greeting;          ///< SMTP/IMAP: what the client is greeted with
  double connect_ms = 0;
  double handshake_ms = 0;
  std::size_t discarded = 0;     ///< C23: upstream bytes dropped after its STARTTLS answer
};

/// Opens the upstream of an L4 listener of `mode` for `identity` (context `ctx`): the TCP dial of HTTP
/// forwarding (connect_upstream: through the upstream's egress proxy when configured, else every address
/// of its host in turn, within connect_timeout), dialogue and handshake each within handshake_timeout; SNI and verification name from
/// `up`; the TLS session stored under exactly `key` offered, and one fresh attempt without it when an
/// upstream fails the handshake over it (as dial_upstream does). Errors: upstream_connect, upstream_timeout,
/// upstream_tls (also: no STARTTLS offered), upstream_protocol, identity_unavailable. Never throws.
boost::asio::awaitable<L4Upstream> open_l4_upstream(config::ListenerMode mode, const UpstreamState& up,
                                                    const keystore::Identity& identity, SslContextPtr ctx,
                                                    UpstreamPool& pool, const PoolKey& key);

}  // namespace orgproxy::daemon
