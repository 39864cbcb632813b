// IMAP with STARTTLS towards the upstream (RFC 3501 §6.2.1 and §7.2.1, RFC 2595 §3.1).
#include <algorithm>
#include <cctype>
#include <sstream>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "starttls.hpp"
#include "async_util.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxResponseLines = 100;

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string quote(std::string_view line) {
  std::string s(line.substr(0, 120));
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return "'" + s + "'";
}

MailPhase failed(ErrorCode code, std::string detail) { return MailPhase{code, std::move(detail), 0}; }

struct Tagged {
  error_code ec;
  std::string status;                 ///< the tagged line
  std::vector<std::string> capabilities;  ///< from "* CAPABILITY ..." lines, upper-case
  bool ok = false;
};

// Reads untagged lines until the line tagged `tag`; keeps the capabilities announced on the way.
asio::awaitable<Tagged> read_tagged(LineReader& reader, std::string_view tag) {
  Tagged t;
  const std::string prefix = std::string(tag) + " ";
  for (std::size_t i = 0; i < kMaxResponseLines; ++i) {
    std::string line;
    if ((t.ec = co_await reader.read_line(line))) co_return t;
    if (upper(line).starts_with("* CAPABILITY ")) {
      std::istringstream words(upper(line.substr(13)));
      for (std::string w; words >> w;) t.capabilities.push_back(w);
    }
    if (line.starts_with(prefix)) {
      t.ok = upper(line.substr(prefix.size())).starts_with("OK");
      t.status = std::move(line);
      co_return t;
    }
  }
  t.status = "(no tagged answer within " + std::to_string(kMaxResponseLines) + " lines)";
  co_return t;
}

bool has(const std::vector<std::string>& caps, std::string_view word) {
  return std::find(caps.begin(), caps.end(), word) != caps.end();
}

}  // namespace

asio::awaitable<MailPhase> imap_before_tls(asio::ip::tcp::socket& socket) {
  LineReader reader = plain_line_reader(socket);
  std::string hello;
  if (auto ec = co_await reader.read_line(hello))
    co_return failed(ErrorCode::upstream_protocol, "IMAP greeting: " + ec.message());
  const std::string h = upper(hello);
  if (h.starts_with("* PREAUTH"))  // RFC 3501 §6.2.1: STARTTLS is only valid before authentication
    co_return failed(ErrorCode::upstream_tls, "the upstream greets PREAUTH: no STARTTLS possible; not relaying in plaintext");
  if (!h.starts_with("* OK")) co_return failed(ErrorCode::upstream_protocol, "IMAP greeting " + quote(hello));

  static constexpr std::string_view kCapability = "o1 CAPABILITY\r\n";
  if (auto [ec, n] = co_await asio::async_write(socket, asio::buffer(kCapability), nothrow); ec)
    co_return failed(ErrorCode::upstream_protocol, "sending CAPABILITY: " + ec.message());
  Tagged caps = co_await read_tagged(reader, "o1");
  if (caps.ec) co_return failed(ErrorCode::upstream_protocol, "CAPABILITY: " + caps.ec.message());
  if (!caps.ok) co_return failed(ErrorCode::upstream_protocol, "CAPABILITY answered " + quote(caps.status));
  if (!has(caps.capabilities, "STARTTLS"))
    co_return failed(ErrorCode::upstream_tls, "the upstream does not offer STARTTLS; not relaying in plaintext");

  static constexpr std::string_view kStarttls = "o2 STARTTLS\r\n";
  if (auto [ec, n] = co_await asio::async_write(socket, asio::buffer(kStarttls), nothrow); ec)
    co_return failed(ErrorCode::upstream_protocol, "sending STARTTLS: " + ec.message());
  Tagged go = co_await read_tagged(reader, "o2");
  if (go.ec) co_return failed(ErrorCode::upstream_protocol, "STARTTLS: " + go.ec.message());
  if (!go.ok) co_return failed(ErrorCode::upstream_tls, "STARTTLS refused: " + quote(go.status));
  // C23: bytes after "o2 OK" and before the handshake are dropped with the reader.
  co_return MailPhase{ErrorCode::none, {}, reader.buffered()};
}

asio::awaitable<MailPhase> imap_after_tls(TlsPipe& tls, std::string& greeting) {
  LineReader reader([&tls](asio::mutable_buffer b) { return tls.read_some(b); });
  static constexpr std::string_view kCapability = "o3 CAPABILITY\r\n";
  if (auto ec = co_await tls.write(asio::buffer(kCapability)))
    co_return failed(ErrorCode::upstream_protocol, "sending CAPABILITY inside TLS: " + ec.message());
  Tagged caps = co_await read_tagged(reader, "o3");
  if (caps.ec) co_return failed(ErrorCode::upstream_protocol, "CAPABILITY inside TLS: " + caps.ec.message());
  if (!caps.ok) co_return failed(ErrorCode::upstream_protocol, "CAPABILITY inside TLS answered " + quote(caps.status));
  // The client sees the session as the upstream offers it inside TLS: no STARTTLS to ask for, and logins
  // allowed (LOGINDISABLED only ever applied to the plaintext link, which the client never had upstream).
  greeting = "* OK [CAPABILITY";
  for (auto const& c : caps.capabilities)
    if (c != "STARTTLS" && c != "LOGINDISABLED") greeting += " " + c;
  greeting += "] orgproxy: upstream session secured with the site certificate\r\n";
  co_return MailPhase{ErrorCode::none, {}, reader.buffered()};
}

}  // namespace orgproxy::daemon
