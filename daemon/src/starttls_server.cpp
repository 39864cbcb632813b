// orgproxy as the SMTP/IMAP server the RIS talks to before TLS, on an smtp-starttls / imap-starttls
// listener with `tls` (RFC 3207; RFC 9051 §6.2.1 and §7.1 PRIVACYREQUIRED). Nothing here reaches the
// upstream: the session is bound to the site and the upstream only once the client is TLS (or, when TLS
// is optional, once it chose plaintext), so client authorization can use its certificate.
#include <cctype>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "l4_deadline.hpp"
#include "starttls.hpp"
#include "async_util.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using boost::system::error_code;
using config::ListenerMode;

namespace {

constexpr std::size_t kMaxLine = 1000;  // RFC 5321 §4.5.3.1.4 (with CRLF); plenty for IMAP's pre-login commands
constexpr std::size_t kMaxLines = 32;   // a client that never does STARTTLS is not kept talking

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The first word of `line` from `from`, and where the rest starts.
std::string_view word_at(std::string_view line, std::size_t from, std::size_t* next) {
  if (from >= line.size()) {
    *next = line.size();
    return {};
  }
  const std::size_t sp = line.find(' ', from);
  const std::size_t end = sp == std::string_view::npos ? line.size() : sp;
  *next = sp == std::string_view::npos ? line.size() : sp + 1;
  return line.substr(from, end - from);
}

// A verb for the log: printable, short.
std::string loggable(std::string_view verb) {
  std::string s(verb.substr(0, 16));
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '?';
  return s;
}

struct Answer {
  std::string text;  // what to write to the client ("" = nothing)
  ClientPlainPhase::Next next = ClientPlainPhase::Next::failed;
  bool done = false;     // the phase ends after `text`
  bool refused = false;  // refused because TLS is required
};

Answer smtp_answer(std::string_view line, bool require_tls) {
  std::size_t rest = 0;
  const std::string verb = upper(word_at(line, 0, &rest));
  const bool has_args = rest < line.size();
  using N = ClientPlainPhase::Next;
  if (verb == "EHLO") return {"250-orgproxy\r\n250 STARTTLS\r\n"};
  if (verb == "HELO") return {"250 orgproxy\r\n"};
  if (verb == "NOOP" || verb == "RSET") return {"250 2.0.0 OK\r\n"};
  if (verb == "QUIT") return {"221 2.0.0 orgproxy closing\r\n", N::quit, true};
  if (verb == "STARTTLS") {
    if (has_args) return {"501 5.5.4 Syntax: STARTTLS takes no argument\r\n"};
    return {"220 2.0.0 Ready to start TLS\r\n", N::tls, true};
  }
  if (require_tls) return {"530 5.7.0 Must issue a STARTTLS command first\r\n", N::failed, false, true};
  return {"", N::plaintext, true};
}

Answer imap_answer(std::string_view line, bool require_tls) {
  std::size_t at = 0;
  const std::string_view tag = word_at(line, 0, &at);
  const std::string command = upper(word_at(line, at, &at));
  using N = ClientPlainPhase::Next;
  // RFC 9051 §2.2.1: a tag is a run of ASTRING-CHARs but '+'; a line without tag and command is "* BAD".
  if (tag.empty() || command.empty() || tag.find_first_of("+(){%*\"\\") != std::string_view::npos)
    return {"* BAD orgproxy: a command is a tag and a command name\r\n"};
  const std::string t(tag);
  const std::string caps = require_tls ? "IMAP4rev1 STARTTLS LOGINDISABLED" : "IMAP4rev1 STARTTLS";
  if (command == "CAPABILITY") return {"* CAPABILITY " + caps + "\r\n" + t + " OK CAPABILITY completed\r\n"};
  if (command == "NOOP") return {t + " OK NOOP completed\r\n"};
  if (command == "LOGOUT") return {"* BYE orgproxy logging out\r\n" + t + " OK LOGOUT completed\r\n", N::quit, true};
  if (command == "STARTTLS") {
    if (at < line.size()) return {t + " BAD STARTTLS takes no argument\r\n"};
    return {t + " OK Begin TLS negotiation now\r\n", N::tls, true};
  }
  if (require_tls) {
    if (command == "LOGIN" || command == "AUTHENTICATE")
      return {t + " NO [PRIVACYREQUIRED] TLS is required: send STARTTLS first\r\n", N::failed, false, true};
    return {t + " BAD TLS is required: send STARTTLS first\r\n", N::failed, false, true};
  }
  return {"", N::plaintext, true};
}

}  // namespace

asio::awaitable<ClientPlainPhase> serve_client_before_tls(ListenerMode mode, asio::ip::tcp::socket& socket,
                                                          bool require_tls, std::chrono::milliseconds idle) {
  ClientPlainPhase out;
  const bool smtp = mode == ListenerMode::smtp_starttls;
  L4Deadline deadline(socket.get_executor(), idle, [&socket] {
    error_code ignored;
    socket.close(ignored);
  });
  auto say = [&](std::string_view text) -> asio::awaitable<bool> {
    if (text.empty()) co_return true;
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(text.data(), text.size()), nothrow);
    if (ec) out.detail = "writing to the client before TLS: " + ec.message();
    co_return !ec;
  };
  const std::string greeting =
      smtp ? "220 orgproxy ESMTP ready\r\n"
           : std::string("* OK [CAPABILITY IMAP4rev1 STARTTLS") + (require_tls ? " LOGINDISABLED" : "") +
                 "] orgproxy ready\r\n";
  if (!co_await say(greeting)) co_return out;

  // LineReader's bound is on the line without its end; kMaxLine counts the CRLF.
  LineReader reader(
      [&socket](asio::mutable_buffer b) -> asio::awaitable<std::pair<error_code, std::size_t>> {
        auto [ec, n] = co_await socket.async_read_some(b, nothrow);
        co_return std::pair{ec, n};
      },
      kMaxLine - 2);
  for (std::size_t lines = 0;; ++lines) {
    if (lines == kMaxLines) {
      co_await say(smtp ? "421 4.7.0 orgproxy: too many commands before STARTTLS, closing\r\n"
                        : "* BYE orgproxy: too many commands before STARTTLS\r\n");
      out.detail = "the client sent " + std::to_string(kMaxLines) + " commands without STARTTLS";
      co_return out;
    }
    std::string line;
    if (auto ec = co_await reader.read_line(line)) {
      if (ec == asio::error::message_size) {
        co_await say(smtp ? "500 5.5.6 orgproxy: line too long, closing\r\n" : "* BYE orgproxy: line too long\r\n");
        out.detail = "a line of the client over " + std::to_string(kMaxLine) + " bytes before TLS";
      } else {
        out.detail = deadline.expired() ? "the client sent no command within idle_timeout before TLS"
                                        : "the client left before TLS: " + ec.message();
      }
      co_return out;
    }
    deadline.extend(idle);
    Answer a = smtp ? smtp_answer(line, require_tls) : imap_answer(line, require_tls);
    if (a.refused) ++out.refused;
    if (!co_await say(a.text)) co_return out;
    if (!a.done) continue;
    out.next = a.next;
    if (a.next == ClientPlainPhase::Next::tls) {
      // C23: what the client pipelined behind STARTTLS was sent in the clear; it is dropped, never read
      // as if it had come inside TLS.
      out.discarded = reader.buffered();
    } else if (a.next == ClientPlainPhase::Next::plaintext) {
      out.pending = line + "\r\n" + reader.take_buffered();
      std::size_t rest = 0;
      std::string_view verb = word_at(line, 0, &rest);
      if (!smtp) verb = word_at(line, rest, &rest);  // after the IMAP tag
      out.detail = "the client went on in plaintext with " + loggable(verb);
    }
    co_return out;
  }
}

}  // namespace orgproxy::daemon
