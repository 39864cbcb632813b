// Issue 8 point 6, field case C23: SMTP and IMAP listeners originate STARTTLS upstream with the site's
// certificate. Real servers requiring client certificates (dovecot, aiosmtpd, started here with their own
// configuration on loopback) and a real client (curl) send a message and read it back; a hostile server
// shows that bytes it sends after its STARTTLS answer never reach the client; an upstream without STARTTLS
// is refused, never used in plaintext. Each negative test has its positive control.
#include <gtest/gtest.h>

#include <future>

#include "mail_world.hpp"

using namespace orgproxy::l4test;
using namespace std::chrono_literals;

TEST_F(Mail, imap_message_appended_and_read_back_through_starttls_with_the_sites_certificate) {
  Dovecot dovecot(tmp_.subdir("dovecot"), world_->upstream_server_cert(), ca());
  // Control: dovecot refuses a plaintext login itself (so the round trip below proves the TLS upstream).
  auto direct = curl({"imap://127.0.0.1:" + std::to_string(dovecot.port()) + "/INBOX", "-u", "ris:secret", "-X", "NOOP"});
  EXPECT_NE(direct.exit_code, 0) << "dovecot must refuse plaintext logins: " << direct.output;

  const std::uint16_t port = start("imap-starttls", dovecot.port());
  const std::string url = "imap://127.0.0.1:" + std::to_string(port) + "/INBOX";
  auto put = curl({url, "-u", "ris:secret", "-T", message("CR-IRM-4711")});
  ASSERT_EQ(put.exit_code, 0) << put.output << daemon_->log() << dovecot.log();
  auto get = curl({url + ";UID=1", "-u", "ris:secret"});
  ASSERT_EQ(get.exit_code, 0) << get.output << daemon_->log();
  EXPECT_NE(get.output.find("Subject: CR-IRM-4711"), std::string::npos) << get.output;
  EXPECT_NE(dovecot.log().find("TLS"), std::string::npos) << dovecot.log();
  EXPECT_TRUE(daemon_->wait_for_log("\"method\":\"IMAP\"")) << daemon_->log();

  // C23 as an IMAP client may try it: STARTTLS pipelined with a LOGIN. The link upstream is TLS already:
  // the STARTTLS gets BAD, and the client was never offered it.
  Client raw(port);
  const std::string greeting = raw.read_line();
  EXPECT_EQ(greeting.rfind("* OK [CAPABILITY IMAP4REV1", 0), 0u) << greeting;
  EXPECT_EQ(greeting.find("STARTTLS"), std::string::npos) << greeting;
  raw.send("a1 STARTTLS\r\na2 LOGOUT\r\n");
  std::string answers;
  for (std::string line; (line = raw.read_line()).size();) {
    answers += line + "\n";
    if (line.rfind("a2 ", 0) == 0) break;
  }
  EXPECT_NE(answers.find("a1 BAD"), std::string::npos) << answers;
}

TEST_F(Mail, smtp_submission_through_starttls_reaches_the_server_as_the_site) {
  Aiosmtpd smtp(tmp_.subdir("aiosmtpd"), world_->upstream_server_cert(), ca());
  // Control: aiosmtpd refuses mail commands before STARTTLS.
  auto direct = curl({"smtp://127.0.0.1:" + std::to_string(smtp.port()), "--mail-from", "ris@a.example",
                      "--mail-rcpt", "dr@b.example", "-T", message("direct")});
  EXPECT_NE(direct.exit_code, 0) << direct.output;
  EXPECT_FALSE(fs::exists(smtp.spool() / "msg-1.eml"));

  const std::uint16_t port = start("smtp-starttls", smtp.port());
  auto sent = curl({"smtp://127.0.0.1:" + std::to_string(port), "--mail-from", "ris@site-a.mssante.example",
                    "--mail-rcpt", "dr@hopital.mssante.example", "-T", message("CR-SCANNER-815")});
  ASSERT_EQ(sent.exit_code, 0) << sent.output << daemon_->log() << smtp.log();
  const std::string stored = read_text(smtp.spool() / "msg-1.eml");
  EXPECT_NE(stored.find("Subject: CR-SCANNER-815"), std::string::npos) << stored;
  const std::string peer = read_text(smtp.spool() / "peer-1.txt");
  EXPECT_NE(peer.find("OU=" + std::string(kA)), std::string::npos) << "the site's certificate: " << peer;
  EXPECT_TRUE(daemon_->wait_for_log("\"method\":\"SMTP\"")) << daemon_->log();
}

namespace {
struct HostileSeen {
  std::vector<std::string> plain;  // lines received before TLS
  std::vector<std::string> tls;    // lines received inside TLS
  std::string subject;
};
}  // namespace

TEST_F(Mail, upstream_bytes_after_its_starttls_answer_are_discarded_and_starttls_is_not_offered_to_the_client) {
  std::promise<HostileSeen> seen;
  tk::TlsScriptServer hostile(script_options(), [&](tk::TlsScriptConn& c) {
    HostileSeen s;
    c.send_plain("220 mx.hostile.example ESMTP\r\n");
    s.plain.push_back(c.recv_plain_line());  // EHLO
    c.send_plain("250-mx.hostile.example\r\n250-STARTTLS\r\n250 8BITMIME\r\n");
    s.plain.push_back(c.recv_plain_line());  // STARTTLS
    // The injection: a fake reply right behind the 220, in the same write, before the handshake.
    c.send_plain("220 2.0.0 go ahead\r\n250-INJECTED.example\r\n250 INJECTED\r\n");
    if (!c.start_tls()) return seen.set_value(s);
    s.subject = c.peer_subject();
    bool ok = true;
    while (ok) {
      std::string line = c.read_line(&ok);
      if (!ok) break;
      s.tls.push_back(line);
      if (line.rfind("EHLO", 0) == 0)
        c.write("250-mx.hostile.example\r\n250-STARTTLS\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
      else if (line == "QUIT")
        c.write("221 bye\r\n"), ok = false;
      else
        c.write("250 ok\r\n");
    }
    seen.set_value(s);
  });
  const std::uint16_t port = start("smtp-starttls", hostile.port());

  Client client(port);
  EXPECT_EQ(client.read_line(), "220 mx.hostile.example ESMTP");
  client.send("EHLO ris.local\r\n");
  std::string reply;
  for (std::string line; !(line = client.read_line()).empty();) {
    reply += line + "\n";
    if (line.size() >= 4 && line[3] == ' ') break;
  }
  EXPECT_EQ(reply.find("INJECTED"), std::string::npos) << reply;
  EXPECT_EQ(reply.find("STARTTLS"), std::string::npos) << "hidden from the client: " << reply;
  EXPECT_EQ(reply, "250-mx.hostile.example\n250 PIPELINING\n") << "the reply stays well formed";
  client.send("QUIT\r\n");
  EXPECT_EQ(client.read_line(), "221 bye");

  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  const HostileSeen s = f.get();
  ASSERT_EQ(s.plain.size(), 2u);
  EXPECT_EQ(s.plain[0].rfind("EHLO [127.0.0.1]", 0), 0u) << s.plain[0];
  EXPECT_EQ(s.plain[1], "STARTTLS");
  // Inside TLS: orgproxy's own EHLO (capabilities asked again), then the client's lines only.
  ASSERT_GE(s.tls.size(), 3u);
  EXPECT_EQ(s.tls[0].rfind("EHLO [127.0.0.1]", 0), 0u);
  EXPECT_EQ(s.tls[1], "EHLO ris.local");
  EXPECT_EQ(s.tls[2], "QUIT");
  EXPECT_EQ(s.subject, world_->site(kA).identity("dmp").subject_dn);
  EXPECT_TRUE(daemon_->wait_for_log("were discarded")) << daemon_->log();
}

TEST_F(Mail, upstream_without_starttls_is_refused_and_nothing_of_the_client_is_sent_in_plaintext) {
  std::promise<std::vector<std::string>> seen;
  tk::TlsScriptServer plain_only(script_options(), [&](tk::TlsScriptConn& c) {
    std::vector<std::string> lines;
    c.send_plain("220 mx.plain.example ESMTP\r\n");
    for (std::string line; !(line = c.recv_plain_line()).empty();) {
      lines.push_back(line);
      c.send_plain(line.rfind("EHLO", 0) == 0 ? "250-mx.plain.example\r\n250 8BITMIME\r\n" : "250 ok\r\n");
    }
    seen.set_value(lines);
  });
  const std::uint16_t port = start("smtp-starttls", plain_only.port());

  Client client(port);
  const std::string first = client.read_line();
  EXPECT_EQ(first.rfind("421 ", 0), 0u) << first;
  client.send("EHLO ris.local\r\nMAIL FROM:<ris@a.example>\r\n");
  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  const auto lines = f.get();
  ASSERT_EQ(lines.size(), 1u) << "only orgproxy's EHLO, then the connection closed";
  EXPECT_EQ(lines[0].rfind("EHLO [127.0.0.1]", 0), 0u);
  EXPECT_TRUE(daemon_->wait_for_log("does not offer STARTTLS")) << daemon_->log();
}

TEST_F(Mail, imap_starttls_on_the_tls_link_gets_bad_from_orgproxy_in_order_and_never_reaches_the_upstream) {
  std::promise<std::vector<std::string>> seen;
  tk::TlsScriptServer imap(script_options(), [&](tk::TlsScriptConn& c) {
    std::vector<std::string> lines;
    c.send_plain("* OK IMAP4rev1 ready\r\n");
    c.recv_plain_line();  // o1 CAPABILITY
    c.send_plain("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\no1 OK done\r\n");
    c.recv_plain_line();  // o2 STARTTLS
    c.send_plain("o2 OK begin TLS\r\n");
    if (!c.start_tls()) return seen.set_value(lines);
    bool ok = true;
    while (ok) {
      const std::string line = c.read_line(&ok);
      if (!ok) break;
      lines.push_back(line);
      const std::string tag = line.substr(0, line.find(' '));
      if (line.find(" CAPABILITY") != std::string::npos)
        c.write("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n");
      else if (line.find(" LOGOUT") != std::string::npos)
        c.write("* BYE\r\n" + tag + " OK bye\r\n"), ok = false;
      else if (line.find(" APPEND") != std::string::npos) {
        // The test's literal: one 12-octet line, then the CRLF that ends the command.
        c.write("+ go ahead\r\n");
        lines.push_back("| " + c.read_line(&ok));
        c.read_line(&ok);
        c.write(tag + " OK appended\r\n");
      } else
        c.write(tag + " OK done\r\n");
    }
    seen.set_value(lines);
  });
  const std::uint16_t port = start("imap-starttls", imap.port());
  {
    Client client(port);
    const std::string greeting = client.read_line();
    EXPECT_EQ(greeting.find("STARTTLS"), std::string::npos) << "never offered: " << greeting;
    client.send("a1 NOOP\r\na2 STARTTLS\r\na3 NOOP\r\n");
    EXPECT_EQ(client.read_line(), "a1 OK done");
    EXPECT_EQ(client.read_line(), "a2 BAD [CLIENTBUG] TLS is active already (RFC 9051 6.2.1)");
    EXPECT_EQ(client.read_line(), "a3 OK done");
    // A literal whose content reads like a STARTTLS command is content: relayed.
    client.send("a4 APPEND INBOX {12}\r\n");
    EXPECT_EQ(client.read_line(), "+ go ahead");
    client.send("b STARTTLS\r\n\r\n");
    EXPECT_EQ(client.read_line(), "a4 OK appended");
    client.send("a5 LOGOUT\r\n");
    EXPECT_EQ(client.read_line(), "* BYE");
    EXPECT_EQ(client.read_line(), "a5 OK bye");
  }  // the session ends with the client: its log line is written then

  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  const std::vector<std::string> expected{"o3 CAPABILITY", "a1 NOOP", "a3 NOOP", "a4 APPEND INBOX {12}",
                                          "| b STARTTLS", "a5 LOGOUT"};
  EXPECT_EQ(f.get(), expected) << "no STARTTLS command reached the upstream";
  EXPECT_TRUE(daemon_->wait_for_log("1 STARTTLS command(s) inside TLS answered by orgproxy")) << daemon_->log();
}
