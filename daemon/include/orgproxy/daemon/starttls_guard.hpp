// The answer to a second STARTTLS on a mail session whose upstream link is TLS already. RFC 3207 §4.2: a
// client MUST NOT start TLS when a TLS session is active, and the server no longer advertises STARTTLS;
// orgproxy answers such a command itself (SMTP `503 5.5.1`, RFC 5321 §4.2.2 "bad sequence of commands";
// IMAP `BAD`, RFC 9051 §6.2.1 / RFC 3501 §6.2.1 "STARTTLS received after a successful TLS negotiation"),
// so the command never reaches the upstream, whose TLS session is the site's. Pure byte logic, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "orgproxy/config/config.hpp"

namespace orgproxy::daemon {

/// Watches both directions of an SMTP or IMAP relay after TLS. Client → upstream: command lines are
/// recognised only at command boundaries (SMTP DATA content up to `CRLF.CRLF`, BDAT chunks and IMAP
/// literals are skipped by their framing, never read as commands), and a STARTTLS command is cut out and
/// queued for a local answer. Upstream → client: replies are counted (SMTP final reply lines, IMAP tagged
/// completions, IMAP literals skipped), so each local answer is sent in its place in the reply order
/// (RFC 2920 §3: replies in command order). A stream it cannot follow (a client sending before the answer
/// it must wait for: DATA's 354, a synchronising literal's `+`) makes it pass everything through unchanged
/// from then on: it never alters bytes it does not understand.
class StarttlsGuard {
 public:
  /// `mode` is smtp_starttls or imap_starttls (any other mode passes everything through).
  explicit StarttlsGuard(config::ListenerMode mode);

  /// Client bytes in order; appends to `up` those to relay upstream (all but cut STARTTLS commands).
  void from_client(std::string_view chunk, std::string& up);
  /// Upstream bytes in order (after any reply filter); appends them to `out` with every local answer
  /// whose turn has come inserted at its place (right after the reply it follows).
  void from_upstream(std::string_view chunk, std::string& out);
  /// Local answers due now, the upstream being idle at a reply boundary with every earlier command
  /// answered: for the client side to send when no upstream bytes are on their way to the client.
  std::string take_due();
  /// Whether local answers wait for their turn.
  bool has_pending() const { return !pending_.empty(); }
  /// STARTTLS commands answered locally so far (for the log).
  std::size_t cut() const { return cut_; }
  /// Whether the guard lost track of the stream and passes everything through.
  bool blind() const { return blind_; }

 private:
  enum class Client : std::uint8_t {
    command,       // at or inside a command line
    data_pending,  // SMTP: DATA sent, its reply (354 or a refusal) not seen yet
    data,          // SMTP: message content until CRLF.CRLF
    skip,          // SMTP BDAT chunk / IMAP literal: `skip_` raw bytes
    literal_wait,  // IMAP: a synchronising literal announced, the server's `+` not seen yet
  };
  struct Answer {
    std::uint64_t after;  // the number of upstream replies that must precede it
    std::string text;
  };
  void client_line_end(std::string& up);
  void upstream_line_end();
  void emit_due(std::string& out, bool at_boundary);
  void go_blind(std::string& up);
  bool upstream_at_boundary() const { return !reply_mid_ && !reply_more_ && !reply_continues_ && reply_skip_ == 0; }

  config::ListenerMode mode_;
  bool smtp_;
  bool blind_ = false;
  // Client side.
  Client client_ = Client::command;
  std::string line_;         // the current client line while it may still be a STARTTLS command
  bool line_held_ = true;    // line_ is held back (not yet relayed) because it may be STARTTLS
  bool command_start_ = true;  // IMAP: the current line starts a command (not the rest after a literal)
  std::string tail_;         // IMAP: the last bytes of a long line, for its `{n}` literal suffix
  std::uint64_t skip_ = 0;
  bool imap_literal_continues_ = false;  // IMAP: an empty non-synchronising literal, the line goes on
  std::uint8_t data_state_ = 1;  // SMTP content: 0 inside a line, 1 at a line start, 2 after ".", 3 after ".\r"
  std::uint64_t sent_ = 0;       // client commands relayed that the upstream answers once each
  std::uint64_t data_seq_ = 0;   // SMTP: the number of the DATA command awaiting its reply
  bool sasl_next_ = false;       // SMTP: the last reply was 334, the next client line is a SASL response
  // Upstream side.
  std::string reply_;            // the first bytes of the current upstream line (its code or tag)
  std::string reply_tail_;       // IMAP: its last bytes, for a `{n}` literal suffix
  bool reply_mid_ = false;       // inside an upstream line
  bool reply_more_ = false;      // SMTP: inside a multi-line reply (after a "ddd-" line)
  bool reply_continues_ = false; // IMAP: the current response continues after a literal
  std::uint64_t reply_skip_ = 0; // IMAP: literal bytes of a response to pass
  std::uint64_t answered_ = 0;   // upstream replies seen
  std::deque<Answer> pending_;
  std::size_t cut_ = 0;
};

}  // namespace orgproxy::daemon
