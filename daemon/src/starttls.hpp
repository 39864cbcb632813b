// STARTTLS origination towards an upstream mail server (MS Santé, DOMAIN.md): SMTP submission (RFC 3207
// on RFC 5321/6409) and IMAP (RFC 3501 §6.2.1, RFC 2595). orgproxy speaks the plaintext part itself, before
// the client is greeted, so no client byte ever travels upstream in the clear; the upstream's bytes after
// its STARTTLS answer and before the handshake are discarded (field case C23, the CVE-2011-0411 class);
// capabilities are asked again inside TLS; an upstream that does not offer STARTTLS is refused (never a
// plaintext fallback).
#pragma once

#include <chrono>
#include <functional>
#include <utility>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "l4_relay.hpp"
#include "orgproxy/config/config.hpp"
#include "orgproxy/daemon/error_response.hpp"
#include "tls_pipe.hpp"

namespace orgproxy::daemon {

/// Outcome of one phase of the mail dialogue.
struct MailPhase {
  ErrorCode error = ErrorCode::none;  ///< upstream_protocol (bad answer), upstream_tls (no STARTTLS), ...
  std::string detail;                 ///< for the log (server text quoted, never a client byte)
  std::size_t discarded = 0;          ///< upstream bytes dropped after the STARTTLS answer (C23)
};

/// Lines from a byte source (the plaintext socket, or the TLS pipe), bounded: a line longer than
/// `max_line` bytes is an error.
class LineReader {
 public:
  using ReadSome = std::function<boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>>(
      boost::asio::mutable_buffer)>;
  explicit LineReader(ReadSome read_some, std::size_t max_line = 8192)
      : read_some_(std::move(read_some)), max_(max_line) {}
  /// The next line without its CRLF (a bare LF also ends a line). Errors: the source's (eof, ...),
  /// message_size when a line is too long.
  boost::asio::awaitable<boost::system::error_code> read_line(std::string& line);
  /// Bytes received after the last line read (the caller drops them: C23).
  std::size_t buffered() const { return buffer_.size(); }
  /// Hands over the bytes received after the last line read, leaving none buffered.
  std::string take_buffered() { return std::exchange(buffer_, {}); }

 private:
  ReadSome read_some_;
  std::size_t max_;
  std::string buffer_;
};

/// A LineReader over the plaintext socket `s` (which must outlive it).
LineReader plain_line_reader(boost::asio::ip::tcp::socket& s);

/// The plaintext part against the upstream on `socket`, up to its positive STARTTLS answer. `client_name`
/// is what EHLO announces (RFC 5321 §4.1.4: our address literal). `greeting` receives the upstream's
/// greeting lines (CRLF-terminated) for the client.
boost::asio::awaitable<MailPhase> smtp_before_tls(boost::asio::ip::tcp::socket& socket, std::string_view client_name,
                                                  std::string& greeting);
/// Inside TLS: EHLO again (RFC 3207 §4.2: the server discards what it knew), checking the answer.
boost::asio::awaitable<MailPhase> smtp_after_tls(TlsPipe& tls, std::string_view client_name);

/// The plaintext part against an IMAP upstream: greeting, CAPABILITY (STARTTLS required), STARTTLS.
boost::asio::awaitable<MailPhase> imap_before_tls(boost::asio::ip::tcp::socket& socket);
/// Inside TLS: CAPABILITY again (RFC 3501 §6.2.1); `greeting` receives the greeting for the client:
/// `* OK [CAPABILITY ...]` with the upstream's post-TLS capabilities, STARTTLS and LOGINDISABLED removed.
boost::asio::awaitable<MailPhase> imap_after_tls(TlsPipe& tls, std::string& greeting);

/// What the RIS did in the plaintext phase of an smtp-starttls / imap-starttls listener with `tls`, where
/// orgproxy answers as the server itself (RFC 3207, RFC 9051 §6.2.1) before any upstream is opened.
struct ClientPlainPhase {
  enum class Next {
    tls,        ///< the client sent STARTTLS and got the go-ahead: the server handshake comes next
    plaintext,  ///< TLS not required and the client sent another command: relay it in plaintext
    quit,       ///< QUIT / LOGOUT answered; close
    failed,     ///< the client went away, timed out, or sent too long a line or too many refused commands
  };
  Next next = Next::failed;
  std::string pending;        ///< plaintext: the client's bytes from its first relayed command on
  std::size_t discarded = 0;  ///< tls: bytes pipelined after the STARTTLS line, dropped unread (C23)
  std::size_t refused = 0;    ///< commands refused because TLS is required
  std::string detail;         ///< for the log (never a client byte beyond the command verb)
};

/// Serves the plaintext phase to the client on `socket`: greets it, answers EHLO/HELO/NOOP/RSET/QUIT
/// (SMTP) or CAPABILITY/NOOP/LOGOUT (IMAP) itself, advertising STARTTLS (and LOGINDISABLED for IMAP when
/// TLS is required), and answers STARTTLS with `220` / `OK`. With `require_tls`, every other command gets
/// `530 5.7.0` (SMTP) or `NO [PRIVACYREQUIRED]` for LOGIN/AUTHENTICATE and `BAD` otherwise (IMAP). Each
/// line must arrive within `idle`; lines are at most 1000 bytes (RFC 5321 §4.5.3.1.4); at most 32 lines.
/// Never throws.
boost::asio::awaitable<ClientPlainPhase> serve_client_before_tls(config::ListenerMode mode,
                                                                 boost::asio::ip::tcp::socket& socket,
                                                                 bool require_tls, std::chrono::milliseconds idle);

/// The SMTP upstream → client filter: removes the STARTTLS line from EHLO replies (the upstream link is
/// already TLS; the client's own STARTTLS would meet `503`/`454` upstream), keeping the multi-line reply
/// well formed (RFC 5321 §4.2.1). Replies are the only bytes an SMTP server sends, so a line-level edit
/// cannot alter message content. Lines over 1 KiB pass untouched.
class SmtpReplyFilter {
 public:
  void operator()(std::string_view chunk, bool at_end, std::string& out);

 private:
  std::string partial_;  // bytes of a line not yet ended
  std::string held_;     // a "250-" line kept until the next one shows whether it is the last
};

/// The access-log "method" of a mode: "TUNNEL", "SMTP", "IMAP".
std::string_view l4_method(config::ListenerMode mode);

}  // namespace orgproxy::daemon
