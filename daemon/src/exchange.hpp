// Internal: the state of one request/response exchange shared by downstream_session.cpp and forward.cpp.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "orgproxy/daemon/access_log.hpp"
#include "orgproxy/daemon/authorization.hpp"
#include "orgproxy/daemon/head_fields.hpp"
#include "orgproxy/daemon/runtime.hpp"
#include "orgproxy/daemon/vihf.hpp"
#include "orgproxy/daemon/worker.hpp"
#include "downstream_stream.hpp"

namespace orgproxy::daemon {

/// The interim answer to `Expect: 100-continue` (RFC 9110 §10.1.1), written at most once per exchange, by the
/// VIHF read or by the body relay, whichever needs the body first.
inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

/// Relay buffer per session: bounds the memory a streamed body takes, whatever its size (C10).
inline constexpr std::size_t kRelayBufferBytes = 16 * 1024;

/// The parser of a client's request: its fields live in the session's request HeadArena.
using RequestParser = boost::beast::http::request_parser<boost::beast::http::buffer_body, HeadAllocator>;

/// The client a downstream connection is counted against (`max_connections`), with the snapshot whose
/// counters hold it. Released when the connection ends or its requests move to another client/snapshot.
struct CountedClient {
  std::shared_ptr<const Runtime> rt;
  const config::Client* client = nullptr;
  void release() {
    if (client) rt->client_limits().close_connection(*client);
    client = nullptr;
    rt.reset();
  }
  ~CountedClient() { release(); }
};

struct Exchange {
  Worker& worker;
  const std::shared_ptr<const Runtime>& rt;
  const config::Listener& listener;
  DownstreamStream& down;  ///< plain TCP or TLS (downstream_stream.hpp)
  boost::beast::flat_buffer& down_buffer;
  RequestParser& req;
  char* relay;  ///< kRelayBufferBytes
  std::string_view request_id;
  AccessRecord& record;
  /// Session-owned storage the record's method/path point into (the request head is rewritten before
  /// the access line is written; reused across requests, so no allocation per request once grown).
  std::string& record_method;
  std::string& record_path;
  std::string& target;  ///< the upstream target; session-owned storage reused across requests
  std::string_view selection_header;
  unsigned client_version = 11;
  bool client_keep_alive = true;
  bool is_head = false;
  bool expect_continue = false;
  bool strip_authorization = false;  ///< the bearer token was for orgproxy: not forwarded
  const PeerAddress* peer = nullptr;
  CountedClient* counted = nullptr;
  std::string_view source_tenant{};  ///< per connection (see SelectionInput)
  const PeerCertificate* peer_cert = nullptr;  ///< the connection's verified client certificate, if any
  ClientCertTenant cert_tenant{};               ///< per connection and snapshot (see SelectionInput)
  std::optional<Vihf> vihf{};         ///< the request's VIHF, when read (vihf_gate.hpp)
  const char* vihf_issuer_check = "not_configured";  ///< for the audit line: match, mismatch, unavailable
  /// Session-owned storage reused across requests (no allocation per request once grown): the wire form
  /// of a message head written with its body in one write, and the upstream read buffer lent to whichever
  /// upstream connection serves the request (pooled connections keep none while idle).
  std::string* wire = nullptr;
  boost::beast::flat_buffer* upstream_read_buffer = nullptr;
  HeadArena* response_arena = nullptr;  ///< the fields of the upstream's response heads (forward.cpp)
  // Set by routing before forward():
  const UpstreamState* upstream = nullptr;
  const keystore::Identity* identity = nullptr;
};

/// What forward() did.
struct ForwardOutcome {
  ErrorCode error = ErrorCode::none;  ///< orgproxy's error, or none when the upstream's answer was relayed
  std::string detail;                 ///< for the log line
  bool response_started = false;      ///< bytes of a response were written downstream
  bool keep_downstream = false;       ///< the downstream connection may carry another request
  bool request_error = false;         ///< the failure came from the client's side (bad chunk, body limit)
};

/// Forwards the request whose head is in `x.req` to `x.upstream` as `x.identity`, streaming both bodies.
/// Never throws.
boost::asio::awaitable<ForwardOutcome> forward(Exchange& x);

}  // namespace orgproxy::daemon
