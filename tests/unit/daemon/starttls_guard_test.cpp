// The second-STARTTLS guard of mail relays (RFC 3207 §4.2, RFC 9051 §6.2.1): a STARTTLS command inside TLS
// is kept from the upstream and answered in its place in the reply order; message content, BDAT chunks and
// IMAP literals that merely look like STARTTLS pass untouched; a stream it cannot follow passes whole.
#include <gtest/gtest.h>

#include <string>

#include "orgproxy/daemon/starttls_guard.hpp"

namespace orgproxy::daemon {
namespace {

using config::ListenerMode;

// What the guard relays upstream for `bytes` from the client.
std::string up(StarttlsGuard& g, std::string_view bytes) {
  std::string out;
  g.from_client(bytes, out);
  return out;
}

// What the client receives for `bytes` from the upstream.
std::string down(StarttlsGuard& g, std::string_view bytes) {
  std::string out;
  g.from_upstream(bytes, out);
  return out;
}

constexpr std::string_view kSmtp503 = "503 5.5.1 TLS is active already (RFC 3207)\r\n";

TEST(StarttlsGuard, smtp_starttls_is_answered_503_after_the_replies_to_earlier_pipelined_commands) {
  StarttlsGuard g(ListenerMode::smtp_starttls);
  EXPECT_EQ(up(g, "NOOP\r\nSTARTTLS\r\n"), "NOOP\r\n");
  EXPECT_TRUE(g.has_pending());
  EXPECT_EQ(g.take_due(), "") << "NOOP is not answered yet: the 503 must come after its reply";
  EXPECT_EQ(down(g, "250 2.0.0 Ok\r\n"), "250 2.0.0 Ok\r\n" + std::string(kSmtp503));
  EXPECT_FALSE(g.has_pending());
  EXPECT_EQ(g.cut(), 1u);
  // Alone, with every command answered, the answer is due at once (for the client side to send).
  EXPECT_EQ(up(g, "starttls\r\n"), "");
  EXPECT_EQ(g.take_due(), kSmtp503);
  // Positive control: other commands pass whole, even split across reads.
  EXPECT_EQ(up(g, "MAIL FROM:<a@x.mssante.fr>\r\nRC"), "MAIL FROM:<a@x.mssante.fr>\r\n");
  EXPECT_EQ(up(g, "PT TO:<b@y.mssante.fr>\r\n"), "RCPT TO:<b@y.mssante.fr>\r\n");
  EXPECT_EQ(up(g, "STAR"), "");
  EXPECT_EQ(up(g, "TTLS\r\n"), "");
  EXPECT_EQ(g.take_due(), "");
  EXPECT_EQ(down(g, "250 2.1.0 Ok\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(down(g, "250-2.1.5 Ok\r\n"), "250-2.1.5 Ok\r\n") << "not after a continuation line";
  EXPECT_EQ(down(g, "250 more\r\n"), "250 more\r\n" + std::string(kSmtp503));
  EXPECT_EQ(g.cut(), 3u);
}

TEST(StarttlsGuard, smtp_message_content_and_bdat_chunks_that_read_starttls_are_relayed_untouched) {
  StarttlsGuard g(ListenerMode::smtp_starttls);
  EXPECT_EQ(up(g, "DATA\r\n"), "DATA\r\n");
  EXPECT_EQ(down(g, "354 End data with <CR><LF>.<CR><LF>\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  const std::string content = "Subject: x\r\n\r\nSTARTTLS\r\n..\r\nSTARTTLS\r\n.\r\n";
  std::string relayed = up(g, content.substr(0, 20));
  relayed += up(g, content.substr(20));
  EXPECT_EQ(relayed, content);
  EXPECT_FALSE(g.has_pending());
  EXPECT_EQ(down(g, "250 2.0.0 queued\r\n"), "250 2.0.0 queued\r\n");
  const std::string bdat = "BDAT 10 LAST\r\nSTARTTLS\r\n";
  EXPECT_EQ(up(g, bdat), bdat);
  EXPECT_FALSE(g.has_pending());
  // Control: the next command line is a command again.
  EXPECT_EQ(up(g, "STARTTLS\r\n"), "");
  EXPECT_EQ(down(g, "250 2.0.0 queued\r\n"), "250 2.0.0 queued\r\n" + std::string(kSmtp503));
}

TEST(StarttlsGuard, smtp_refused_data_returns_to_commands_and_a_client_not_waiting_for_354_is_passed_through) {
  StarttlsGuard g(ListenerMode::smtp_starttls);
  EXPECT_EQ(up(g, "DATA\r\n"), "DATA\r\n");
  EXPECT_EQ(down(g, "554 5.5.1 No valid recipients\r\n"), "554 5.5.1 No valid recipients\r\n");
  EXPECT_EQ(up(g, "STARTTLS\r\n"), "") << "after a refused DATA the client speaks commands";
  EXPECT_EQ(g.take_due(), kSmtp503);

  StarttlsGuard h(ListenerMode::smtp_starttls);
  EXPECT_EQ(up(h, "DATA\r\n"), "DATA\r\n");
  EXPECT_EQ(up(h, "STARTTLS\r\n.\r\n"), "STARTTLS\r\n.\r\n") << "content or command? unknown: relayed as is";
  EXPECT_TRUE(h.blind());
  EXPECT_EQ(up(h, "STARTTLS\r\n"), "STARTTLS\r\n");
}

TEST(StarttlsGuard, imap_starttls_gets_bad_with_its_tag_and_literals_that_read_starttls_pass) {
  StarttlsGuard g(ListenerMode::imap_starttls);
  EXPECT_EQ(up(g, "a1 STARTTLS\r\n"), "");
  EXPECT_EQ(g.take_due(), "a1 BAD [CLIENTBUG] TLS is active already (RFC 9051 6.2.1)\r\n");
  // A non-synchronising literal whose content is a STARTTLS line.
  const std::string append = "a2 APPEND INBOX {12+}\r\nb STARTTLS\r\n\r\n";
  EXPECT_EQ(up(g, append), append);
  EXPECT_FALSE(g.has_pending());
  // A synchronising literal: its content follows the server's "+".
  EXPECT_EQ(up(g, "a3 APPEND INBOX {12}\r\n"), "a3 APPEND INBOX {12}\r\n");
  EXPECT_EQ(down(g, "+ Ready for literal data\r\n"), "+ Ready for literal data\r\n");
  EXPECT_EQ(up(g, "c STARTTLS\r\n\r\n"), "c STARTTLS\r\n\r\n");
  EXPECT_FALSE(g.has_pending());
  EXPECT_EQ(up(g, "a4 STARTTLS\r\n"), "");
  EXPECT_EQ(g.take_due(), "") << "a2 and a3 are not answered yet";
  // A FETCH literal in a response holds a line that looks tagged: it is not counted as an answer.
  EXPECT_EQ(down(g, "a2 OK APPEND completed\r\n* 1 FETCH (BODY[] {14}\r\na3 OK forged\r\n)\r\n"),
            "a2 OK APPEND completed\r\n* 1 FETCH (BODY[] {14}\r\na3 OK forged\r\n)\r\n");
  EXPECT_TRUE(g.has_pending());
  EXPECT_EQ(down(g, "a3 OK APPEND completed\r\n"),
            "a3 OK APPEND completed\r\na4 BAD [CLIENTBUG] TLS is active already (RFC 9051 6.2.1)\r\n");
  EXPECT_EQ(g.cut(), 2u);
}

TEST(StarttlsGuard, imap_idle_done_and_authenticate_lines_are_not_commands) {
  StarttlsGuard g(ListenerMode::imap_starttls);
  EXPECT_EQ(up(g, "a1 IDLE\r\n"), "a1 IDLE\r\n");
  EXPECT_EQ(down(g, "+ idling\r\n"), "+ idling\r\n");
  EXPECT_EQ(up(g, "DONE\r\n"), "DONE\r\n");
  EXPECT_EQ(up(g, "a2 STARTTLS\r\n"), "");
  EXPECT_EQ(g.take_due(), "") << "a1 is not completed yet";
  EXPECT_EQ(down(g, "a1 OK IDLE terminated\r\n"),
            "a1 OK IDLE terminated\r\na2 BAD [CLIENTBUG] TLS is active already (RFC 9051 6.2.1)\r\n");
  EXPECT_FALSE(g.has_pending()) << "DONE got no answer of its own and none was awaited";
}

TEST(StarttlsGuard, a_tunnel_passes_everything) {
  StarttlsGuard g(ListenerMode::tunnel);
  EXPECT_EQ(up(g, "STARTTLS\r\n"), "STARTTLS\r\n");
  EXPECT_EQ(down(g, "250 ok\r\n"), "250 ok\r\n");
  EXPECT_EQ(g.cut(), 0u);
}

}  // namespace
}  // namespace orgproxy::daemon
