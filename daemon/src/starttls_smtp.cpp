// SMTP submission with STARTTLS towards the upstream (RFC 3207, RFC 5321 §4.2 reply syntax).
#include <array>
#include <cctype>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "starttls.hpp"
#include "async_util.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxReplyLines = 100;

struct Reply {
  int code = 0;
  std::vector<std::string> lines;
  error_code ec;
  bool malformed = false;
};

// One reply, possibly multi-line ("250-a", "250-b", "250 c"): same code on every line.
asio::awaitable<Reply> read_reply(LineReader& reader) {
  Reply r;
  for (std::size_t i = 0; i < kMaxReplyLines; ++i) {
    std::string line;
    if ((r.ec = co_await reader.read_line(line))) co_return r;
    const bool digits = line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0])) &&
                        std::isdigit(static_cast<unsigned char>(line[1])) &&
                        std::isdigit(static_cast<unsigned char>(line[2]));
    if (!digits || (line.size() > 3 && line[3] != '-' && line[3] != ' ')) {
      r.malformed = true;
      r.lines.push_back(std::move(line));
      co_return r;
    }
    const int code = std::stoi(line.substr(0, 3));
    if (i > 0 && code != r.code) {
      r.malformed = true;
      co_return r;
    }
    r.code = code;
    const bool last = line.size() == 3 || line[3] == ' ';
    r.lines.push_back(std::move(line));
    if (last) co_return r;
  }
  r.malformed = true;
  co_return r;
}

// The first line, printable ASCII only and bounded, for the log.
std::string quote(const Reply& r) {
  std::string s = r.lines.empty() ? std::string() : r.lines.front().substr(0, 120);
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return "'" + s + "'";
}

MailPhase failed(ErrorCode code, std::string detail) { return MailPhase{code, std::move(detail), 0}; }

MailPhase reply_failure(const Reply& r, const char* when) {
  if (r.ec) return failed(ErrorCode::upstream_protocol, std::string(when) + ": " + r.ec.message());
  return failed(ErrorCode::upstream_protocol, std::string(when) + ": unexpected answer " + quote(r));
}

bool offers_starttls(const Reply& ehlo) {
  for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {  // line 0 is the server's name
    if (ehlo.lines[i].size() <= 4) continue;
    std::string word = ehlo.lines[i].substr(4, ehlo.lines[i].find(' ', 4) - 4);
    for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (word == "STARTTLS") return true;
  }
  return false;
}

}  // namespace

asio::awaitable<MailPhase> smtp_before_tls(asio::ip::tcp::socket& socket, std::string_view client_name,
                                           std::string& greeting) {
  LineReader reader = plain_line_reader(socket);
  Reply hello = co_await read_reply(reader);
  if (hello.ec || hello.malformed || hello.code != 220) co_return reply_failure(hello, "SMTP greeting");
  greeting.clear();
  for (auto const& l : hello.lines) greeting += l + "\r\n";

  const std::string ehlo = "EHLO " + std::string(client_name) + "\r\n";
  if (auto [ec, n] = co_await asio::async_write(socket, asio::buffer(ehlo), nothrow); ec)
    co_return failed(ErrorCode::upstream_protocol, "sending EHLO: " + ec.message());
  Reply caps = co_await read_reply(reader);
  if (caps.ec || caps.malformed || caps.code != 250) co_return reply_failure(caps, "EHLO");
  if (!offers_starttls(caps))
    co_return failed(ErrorCode::upstream_tls, "the upstream does not offer STARTTLS; not relaying in plaintext");

  static constexpr std::string_view kStarttls = "STARTTLS\r\n";
  if (auto [ec, n] = co_await asio::async_write(socket, asio::buffer(kStarttls), nothrow); ec)
    co_return failed(ErrorCode::upstream_protocol, "sending STARTTLS: " + ec.message());
  Reply go = co_await read_reply(reader);
  if (go.ec || go.malformed) co_return reply_failure(go, "STARTTLS");
  if (go.code != 220) co_return failed(ErrorCode::upstream_tls, "STARTTLS refused: " + quote(go));
  // C23: whatever followed the 220 in plaintext is an attacker's (a server sends nothing before the
  // handshake); it is dropped with the reader, never read as if it came inside TLS.
  co_return MailPhase{ErrorCode::none, {}, reader.buffered()};
}

asio::awaitable<MailPhase> smtp_after_tls(TlsPipe& tls, std::string_view client_name) {
  LineReader reader([&tls](asio::mutable_buffer b) { return tls.read_some(b); });
  const std::string ehlo = "EHLO " + std::string(client_name) + "\r\n";
  if (auto ec = co_await tls.write(asio::buffer(ehlo)))
    co_return failed(ErrorCode::upstream_protocol, "sending EHLO inside TLS: " + ec.message());
  Reply caps = co_await read_reply(reader);
  if (caps.ec || caps.malformed || caps.code != 250) co_return reply_failure(caps, "EHLO inside TLS");
  co_return MailPhase{ErrorCode::none, {}, reader.buffered()};
}

}  // namespace orgproxy::daemon
