// Issue 8 point 6, the RIS side: an smtp-starttls / imap-starttls listener with `tls` answers the RIS's
// STARTTLS with its own certificate (curl --ssl-reqd), a tunnel listener with `tls` takes implicit TLS
// (imaps://), then the session continues upstream with the site's certificate to real servers (aiosmtpd,
// dovecot) that require it. Field case C23 in the downstream direction: commands pipelined behind the
// RIS's STARTTLS are never executed (control: the same command after the handshake is); commands before
// STARTTLS are refused when TLS is required (control: relayed when it is not).
#include <gtest/gtest.h>
#include <future>

#include "mail_world.hpp"

using namespace orgproxy::l4test;
using namespace std::chrono_literals;

namespace {

// Plaintext SMTP lines up to the reply's last line ("250 x", not "250-x").
std::string read_reply(Client& c) {
  std::string all;
  for (std::string line; !(line = c.read_line()).empty();) {
    all += line + "\n";
    if (line.size() < 4 || line[3] == ' ') break;
  }
  return all;
}

// What a scripted SMTP upstream received inside TLS (after orgproxy's own STARTTLS towards it).
tk::TlsScriptServer::Script recording_smtp(std::promise<std::vector<std::string>>& seen) {
  return [&seen](tk::TlsScriptConn& c) {
    std::vector<std::string> lines;
    c.send_plain("220 mx.test.example ESMTP\r\n");
    c.recv_plain_line();  // EHLO
    c.send_plain("250-mx.test.example\r\n250 STARTTLS\r\n");
    c.recv_plain_line();  // STARTTLS
    c.send_plain("220 2.0.0 go ahead\r\n");
    if (!c.start_tls()) return seen.set_value(lines);
    bool ok = true;
    bool data = false;  // inside DATA's content, recorded as "| <line>"
    while (ok) {
      std::string line = c.read_line(&ok);
      if (!ok) break;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (data) {
        lines.push_back("| " + line);
        if (line == ".") {
          c.write("250 2.0.0 queued\r\n");
          data = false;
        }
        continue;
      }
      lines.push_back(line);
      if (line.rfind("EHLO", 0) == 0)
        c.write("250-mx.test.example\r\n250 8BITMIME\r\n");
      else if (line == "DATA") {
        c.write("354 end with <CRLF>.<CRLF>\r\n");
        data = true;
      } else if (line == "QUIT")
        c.write("221 bye\r\n"), ok = false;
      else
        c.write("250 ok\r\n");
    }
    seen.set_value(lines);
  };
}

class MailTls : public Mail {
 protected:
  void SetUp() override {
    Mail::SetUp();
    listener_cert_ = world_->pki().issue_server_cert("listener", {"localhost"}, {"127.0.0.1"});
    tk::OrgCertOptions o;
    o.subject = {"75", "Groupe Exemple", kA, "RIS A"};
    o.file_stem = "ris-client-a";
    ris_cert_ = world_->pki().issue_org_cert_with_key(o);
  }
  // The listener's `tls` mapping: the RIS's certificate required, TLS required unless `require_starttls`
  // says otherwise ("" = the default).
  std::string tls_yaml(const std::string& require_starttls = "") const {
    std::string y = "    tls:\n      cert: \"" + listener_cert_.chain.string() + "\"\n      key: \"" +
                    listener_cert_.key.string() + "\"\n      client_ca: \"" + ca() +
                    "\"\n      require_client_cert: true\n";
    if (!require_starttls.empty()) y += "      require_starttls: " + require_starttls + "\n";
    return y;
  }
  std::vector<std::string> tls_args() const {
    return {"--cacert", ca(), "--cert", ris_cert_.chain.string(), "--key", ris_cert_.key.string()};
  }
  std::vector<std::string> with_tls(std::vector<std::string> args) const {
    auto t = tls_args();
    args.insert(args.end(), t.begin(), t.end());
    return args;
  }

  // The scripted SMTP upstream recording in seen_ what it receives inside TLS, and an smtp-starttls
  // listener with `tls` (`require_starttls` as for tls_yaml) in front of it; returns the listener's port.
  std::uint16_t start_recording_smtp(const std::string& require_starttls = "") {
    upstream_ = std::make_unique<tk::TlsScriptServer>(script_options(), recording_smtp(seen_));
    return start("smtp-starttls", upstream_->port(), tls_yaml(require_starttls));
  }
  // What the recording upstream received, once its connection ended.
  std::vector<std::string> recorded() {
    auto f = seen_.get_future();
    if (f.wait_for(60s) != std::future_status::ready) {
      ADD_FAILURE() << "the upstream's connection did not end";
      return {};
    }
    return f.get();
  }
  // The RIS's greeting and EHLO in plaintext, both answered by orgproxy itself.
  static void greet(Client& client) {
    EXPECT_EQ(client.read_line().rfind("220 ", 0), 0u);
    client.send("EHLO ris.local\r\n");
    EXPECT_EQ(read_reply(client), "250-orgproxy\n250 STARTTLS\n");
  }

  tk::IssuedFiles listener_cert_;
  tk::IssuedFiles ris_cert_;
  std::promise<std::vector<std::string>> seen_;  // declared before upstream_: outlives its script
  std::unique_ptr<tk::TlsScriptServer> upstream_;
};

}  // namespace

TEST_F(MailTls, smtp_ris_starttls_with_ssl_reqd_delivers_the_message_as_the_site) {
  Aiosmtpd smtp(tmp_.subdir("aiosmtpd"), world_->upstream_server_cert(), ca());
  const std::uint16_t port = start("smtp-starttls", smtp.port(), tls_yaml());
  const std::string url = "smtp://127.0.0.1:" + std::to_string(port);
  // Control: without its client certificate the RIS's handshake is refused and nothing is stored.
  auto anonymous = curl({url, "--ssl-reqd", "--cacert", ca(), "--mail-from", "ris@site-a.mssante.example",
                         "--mail-rcpt", "dr@hopital.mssante.example", "-T", message("anonymous")});
  EXPECT_NE(anonymous.exit_code, 0) << anonymous.output;
  EXPECT_FALSE(fs::exists(smtp.spool() / "msg-1.eml"));

  auto sent = curl(with_tls({url, "--ssl-reqd", "--mail-from", "ris@site-a.mssante.example", "--mail-rcpt",
                             "dr@hopital.mssante.example", "-T", message("CR-ECHO-2207")}));
  ASSERT_EQ(sent.exit_code, 0) << sent.output << daemon_->log() << smtp.log();
  const std::string stored = read_text(smtp.spool() / "msg-1.eml");
  EXPECT_NE(stored.find("Subject: CR-ECHO-2207"), std::string::npos) << stored;
  const std::string peer = read_text(smtp.spool() / "peer-1.txt");
  EXPECT_NE(peer.find("OU=" + std::string(kA)), std::string::npos) << "upstream, the site's certificate: " << peer;
  EXPECT_EQ(peer.find("RIS A"), std::string::npos) << "never the RIS's own certificate: " << peer;
}

TEST_F(MailTls, imap_ris_starttls_with_ssl_reqd_appends_and_reads_back) {
  Dovecot dovecot(tmp_.subdir("dovecot"), world_->upstream_server_cert(), ca());
  const std::uint16_t port = start("imap-starttls", dovecot.port(), tls_yaml());
  const std::string url = "imap://127.0.0.1:" + std::to_string(port) + "/INBOX";
  auto put = curl(with_tls({url, "--ssl-reqd", "-u", "ris:secret", "-T", message("CR-TDM-1312")}));
  ASSERT_EQ(put.exit_code, 0) << put.output << daemon_->log() << dovecot.log();
  auto get = curl(with_tls({url + ";UID=1", "--ssl-reqd", "-u", "ris:secret"}));
  ASSERT_EQ(get.exit_code, 0) << get.output << daemon_->log();
  EXPECT_NE(get.output.find("Subject: CR-TDM-1312"), std::string::npos) << get.output;
  EXPECT_TRUE(daemon_->wait_for_log("\"method\":\"IMAP\"")) << daemon_->log();
}

TEST_F(MailTls, imaps_tunnel_takes_implicit_tls_from_the_ris_and_reaches_imaps_as_the_site) {
  Dovecot dovecot(tmp_.subdir("dovecot"), world_->upstream_server_cert(), ca());
  const std::uint16_t port = start("tunnel", dovecot.imaps_port(), tls_yaml());
  const std::string url = "imaps://127.0.0.1:" + std::to_string(port) + "/INBOX";
  // Control: plaintext IMAP to the implicit-TLS listener gets nowhere.
  auto plain = curl({"imap://127.0.0.1:" + std::to_string(port) + "/INBOX", "-u", "ris:secret", "-X", "NOOP"});
  EXPECT_NE(plain.exit_code, 0) << plain.output;
  auto put = curl(with_tls({url, "-u", "ris:secret", "-T", message("CR-RX-0042")}));
  ASSERT_EQ(put.exit_code, 0) << put.output << daemon_->log() << dovecot.log();
  auto get = curl(with_tls({url + ";UID=1", "-u", "ris:secret"}));
  ASSERT_EQ(get.exit_code, 0) << get.output << daemon_->log();
  EXPECT_NE(get.output.find("Subject: CR-RX-0042"), std::string::npos) << get.output;
  EXPECT_TRUE(daemon_->wait_for_log("\"method\":\"TUNNEL\"")) << daemon_->log();
}

TEST_F(MailTls, smtps_tunnel_takes_implicit_tls_from_the_ris_and_delivers_as_the_site) {
  Aiosmtpd smtps(tmp_.subdir("aiosmtpd"), world_->upstream_server_cert(), ca(), /*implicit=*/true);
  const std::uint16_t port = start("tunnel", smtps.port(), tls_yaml());
  auto sent = curl(with_tls({"smtps://127.0.0.1:" + std::to_string(port), "--mail-from", "ris@site-a.mssante.example",
                             "--mail-rcpt", "dr@hopital.mssante.example", "-T", message("CR-MAMMO-0815")}));
  ASSERT_EQ(sent.exit_code, 0) << sent.output << daemon_->log() << smtps.log();
  EXPECT_NE(read_text(smtps.spool() / "msg-1.eml").find("Subject: CR-MAMMO-0815"), std::string::npos);
  const std::string peer = read_text(smtps.spool() / "peer-1.txt");
  EXPECT_NE(peer.find("OU=" + std::string(kA)), std::string::npos) << "upstream, the site's certificate: " << peer;
}


TEST_F(MailTls, smtp_commands_pipelined_after_the_ris_starttls_are_discarded_and_the_same_after_tls_are_executed) {
  const std::uint16_t port = start_recording_smtp();

  {
    Client client(port);
    EXPECT_EQ(client.read_line().rfind("220 ", 0), 0u);
    // C23: one write, the injection behind STARTTLS.
    client.send("EHLO ris.local\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<a@ris.local>\r\n");
    EXPECT_EQ(read_reply(client), "250-orgproxy\n250 STARTTLS\n");
    EXPECT_EQ(client.read_line().rfind("220 ", 0), 0u);
    TlsClient tls(client, ca(), &ris_cert_);
    ASSERT_TRUE(tls.ok()) << daemon_->log();
    // Session state reset: the client greets again and is offered no second STARTTLS.
    tls.send("EHLO ris.local\r\n");
    const std::string caps = tls.read_until("250 ");
    EXPECT_EQ(caps.find("STARTTLS"), std::string::npos) << caps;
    // Positive control: the same command sent inside TLS is executed.
    tls.send("MAIL FROM:<b@ris.local>\r\n");
    EXPECT_EQ(tls.read_line(), "250 ok");
    tls.send("QUIT\r\n");
    EXPECT_EQ(tls.read_line(), "221 bye");
  }  // the session ends with the client: its log line is written then
  const auto lines = recorded();
  ASSERT_EQ(lines.size(), 4u) << testing::PrintToString(lines);
  EXPECT_EQ(lines[0].rfind("EHLO [127.0.0.1]", 0), 0u) << "orgproxy's own EHLO inside TLS";
  EXPECT_EQ(lines[1], "EHLO ris.local");
  EXPECT_EQ(lines[2], "MAIL FROM:<b@ris.local>");
  EXPECT_EQ(lines[3], "QUIT");
  EXPECT_TRUE(daemon_->wait_for_log("pipelined after its STARTTLS were discarded")) << daemon_->log();
}

TEST_F(MailTls, smtp_starttls_inside_tls_is_answered_503_by_orgproxy_in_reply_order_and_never_reaches_the_upstream) {
  const std::uint16_t port = start_recording_smtp();
  {
    Client client(port);
    greet(client);
    client.send("STARTTLS\r\n");
    EXPECT_EQ(client.read_line().rfind("220 ", 0), 0u);
    TlsClient tls(client, ca(), &ris_cert_);
    ASSERT_TRUE(tls.ok()) << daemon_->log();
    tls.send("EHLO ris.local\r\n");
    EXPECT_EQ(tls.read_until("250 ").find("STARTTLS"), std::string::npos);
    // Pipelined (RFC 2920): the 503 comes after the reply to the command before it, from orgproxy.
    tls.send("MAIL FROM:<a@ris.local>\r\nSTARTTLS\r\n");
    EXPECT_EQ(tls.read_line(), "250 ok");
    EXPECT_EQ(tls.read_line(), "503 5.5.1 TLS is active already (RFC 3207)");
    // Message content that reads STARTTLS is content: relayed, not answered.
    tls.send("RCPT TO:<b@hopital.mssante.example>\r\n");
    EXPECT_EQ(tls.read_line(), "250 ok");
    tls.send("DATA\r\n");
    EXPECT_EQ(tls.read_line().rfind("354 ", 0), 0u);
    tls.send("Subject: CR\r\n\r\nSTARTTLS\r\n.\r\n");
    EXPECT_EQ(tls.read_line(), "250 2.0.0 queued");
    // Positive control: the session goes on, relayed both ways.
    tls.send("STARTTLS\r\nRSET\r\n");
    EXPECT_EQ(tls.read_line(), "503 5.5.1 TLS is active already (RFC 3207)");
    EXPECT_EQ(tls.read_line(), "250 ok");
    tls.send("QUIT\r\n");
    EXPECT_EQ(tls.read_line(), "221 bye");
  }
  std::vector<std::string> lines = recorded();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front().rfind("EHLO [127.0.0.1]", 0), 0u) << "orgproxy's own EHLO inside TLS";
  lines.erase(lines.begin());
  const std::vector<std::string> expected{"EHLO ris.local", "MAIL FROM:<a@ris.local>",
                                          "RCPT TO:<b@hopital.mssante.example>", "DATA", "| Subject: CR", "| ",
                                          "| STARTTLS", "| .", "RSET", "QUIT"};
  EXPECT_EQ(lines, expected) << "no STARTTLS command reached the upstream";
  EXPECT_TRUE(daemon_->wait_for_log("2 STARTTLS command(s) inside TLS answered by orgproxy")) << daemon_->log();
}

TEST_F(MailTls, imap_login_pipelined_after_the_ris_starttls_is_not_executed_and_after_tls_it_is) {
  Dovecot dovecot(tmp_.subdir("dovecot"), world_->upstream_server_cert(), ca());
  const std::uint16_t port = start("imap-starttls", dovecot.port(), tls_yaml());

  Client client(port);
  const std::string greeting = client.read_line();
  EXPECT_NE(greeting.find("STARTTLS"), std::string::npos) << greeting;
  EXPECT_NE(greeting.find("LOGINDISABLED"), std::string::npos) << greeting;
  client.send("a1 STARTTLS\r\na2 LOGIN ris secret\r\n");
  EXPECT_EQ(client.read_line().rfind("a1 OK", 0), 0u);
  TlsClient tls(client, ca(), &ris_cert_);
  ASSERT_TRUE(tls.ok()) << daemon_->log();
  // Had a2 been executed, this session would be authenticated: SELECT would succeed.
  tls.send("a3 SELECT INBOX\r\n");
  const std::string select = tls.read_until("a3 ");
  EXPECT_EQ(select.find("a2 "), std::string::npos) << select;
  EXPECT_EQ(select.find("a3 OK"), std::string::npos) << "not authenticated: " << select;
  // A second STARTTLS inside TLS is refused.
  tls.send("a4 STARTTLS\r\n");
  EXPECT_EQ(tls.read_until("a4 ").find("a4 BAD"), 0u);
  // Positive control: the same LOGIN sent inside TLS is executed.
  tls.send("a5 LOGIN ris secret\r\n");
  EXPECT_NE(tls.read_until("a5 ").find("a5 OK"), std::string::npos) << dovecot.log();
  tls.send("a6 SELECT INBOX\r\n");
  EXPECT_NE(tls.read_until("a6 ").find("a6 OK"), std::string::npos);
}

TEST_F(MailTls, plaintext_commands_before_starttls_are_refused_when_tls_is_required_and_nothing_goes_upstream) {
  const std::uint16_t port = start_recording_smtp();

  Client client(port);
  greet(client);
  client.send("MAIL FROM:<a@ris.local>\r\n");
  EXPECT_EQ(client.read_line(), "530 5.7.0 Must issue a STARTTLS command first");
  client.send("QUIT\r\n");
  EXPECT_EQ(client.read_line().rfind("221 ", 0), 0u);
  bool eof = false;
  client.read_to_eof(&eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(upstream_->accepted(), 0u) << "no upstream connection for a client that never did STARTTLS";
  EXPECT_TRUE(daemon_->wait_for_log("refused before STARTTLS")) << daemon_->log();
}

TEST_F(MailTls, plaintext_commands_are_relayed_when_starttls_is_optional) {
  const std::uint16_t port = start_recording_smtp("false");

  Client client(port);
  greet(client);
  client.send("MAIL FROM:<a@ris.local>\r\n");
  EXPECT_EQ(client.read_line(), "250 ok");
  client.send("QUIT\r\n");
  EXPECT_EQ(client.read_line(), "221 bye");
  const auto lines = recorded();
  ASSERT_EQ(lines.size(), 3u) << testing::PrintToString(lines);
  EXPECT_EQ(lines[1], "MAIL FROM:<a@ris.local>");
  EXPECT_EQ(lines[2], "QUIT");
}

TEST_F(MailTls, imap_login_before_starttls_is_refused_with_privacyrequired_and_allowed_when_optional) {
  Dovecot dovecot(tmp_.subdir("dovecot"), world_->upstream_server_cert(), ca());
  {
    const std::uint16_t port = start("imap-starttls", dovecot.port(), tls_yaml());
    Client client(port);
    client.read_line();
    client.send("a1 LOGIN ris secret\r\na2 SELECT INBOX\r\na3 LOGOUT\r\n");
    EXPECT_EQ(client.read_line().rfind("a1 NO [PRIVACYREQUIRED]", 0), 0u);
    EXPECT_EQ(client.read_line().rfind("a2 BAD", 0), 0u);
    EXPECT_EQ(client.read_line().rfind("* BYE", 0), 0u);
    EXPECT_EQ(client.read_line().rfind("a3 OK", 0), 0u);
  }
  daemon_.reset();
  config_.upstreams.clear();
  config_.l4_listeners.clear();
  // Control: with STARTTLS optional the same LOGIN is relayed, over orgproxy's TLS link to dovecot.
  const std::uint16_t port = start("imap-starttls", dovecot.port(), tls_yaml("false"));
  Client client(port);
  client.read_line();
  client.send("a1 LOGIN ris secret\r\n");
  std::string login;
  for (std::string line; !(line = client.read_line()).empty();) {
    login += line + "\n";
    if (line.rfind("a1 ", 0) == 0) break;
  }
  EXPECT_NE(login.find("a1 OK"), std::string::npos) << login << daemon_->log() << dovecot.log();
}

TEST_F(MailTls, with_optional_starttls_curl_and_smtplib_deliver_in_plaintext_after_orgproxys_own_ehlo_answer) {
  Aiosmtpd smtp(tmp_.subdir("aiosmtpd"), world_->upstream_server_cert(), ca());
  const std::uint16_t port = start("smtp-starttls", smtp.port(), tls_yaml("false"));
  // curl without --ssl / --ssl-reqd: plaintext to orgproxy, which binds the session at MAIL FROM.
  auto sent = curl({"smtp://127.0.0.1:" + std::to_string(port), "--mail-from", "ris@site-a.mssante.example",
                    "--mail-rcpt", "dr@hopital.mssante.example", "-T", message("CR-PLAIN-CURL")});
  ASSERT_EQ(sent.exit_code, 0) << sent.output << daemon_->log() << smtp.log();
  EXPECT_NE(read_text(smtp.spool() / "msg-1.eml").find("Subject: CR-PLAIN-CURL"), std::string::npos);
  // Python's smtplib: its EHLO features are orgproxy's own (the upstream is not connected yet), so it
  // sends plain MAIL FROM / RCPT TO / DATA, which the upstream accepts over orgproxy's TLS link. AUTH is
  // not offered before STARTTLS (a client that needs it does STARTTLS, then the upstream answers EHLO).
  const std::string script =
      "import smtplib, sys\n"
      "s = smtplib.SMTP('127.0.0.1', " + std::to_string(port) + ", timeout=60)\n"
      "s.ehlo('ris.local')\n"
      "print('features', sorted(s.esmtp_features))\n"
      "s.sendmail('ris@site-a.mssante.example', ['dr@hopital.mssante.example'],\n"
      "           'Subject: CR-PLAIN-SMTPLIB\\r\\n\\r\\nCompte rendu.\\r\\n')\n"
      "try:\n    s.login('ris', 'secret')\nexcept smtplib.SMTPNotSupportedError:\n    print('no AUTH before STARTTLS')\n"
      "s.quit()\n";
  auto py = tk::run_command({kPython, "-c", script}, {}, 90s);
  ASSERT_EQ(py.exit_code, 0) << py.output << daemon_->log() << smtp.log();
  EXPECT_NE(py.output.find("features ['starttls']"), std::string::npos) << py.output;
  EXPECT_NE(py.output.find("no AUTH before STARTTLS"), std::string::npos) << py.output;
  EXPECT_NE(read_text(smtp.spool() / "msg-2.eml").find("Subject: CR-PLAIN-SMTPLIB"), std::string::npos);
  const std::string peer = read_text(smtp.spool() / "peer-2.txt");
  EXPECT_NE(peer.find("OU=" + std::string(kA)), std::string::npos) << "upstream, the site's certificate: " << peer;
}
