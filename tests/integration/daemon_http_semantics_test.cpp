// HTTP/1.1 semantics across the proxy against an upstream that writes exact bytes (field cases C01e, C03f,
// C04, C05, C06, C07, C09): interim answers, bodiless answers, close-delimited and truncated bodies,
// stale pooled connections, early answers, upstream errors relayed untouched.
#include <signal.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon_http_world.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

TEST_F(DaemonHttp, interim_1xx_answers_in_a_row_are_never_taken_as_final) {  // C05 (a)
  start({[](ScriptConn& c) {
    for (int i = 0; i < 2; ++i) {
      auto head = c.read_head();
      c.read_exact(std::stoul(head_field(head, "Content-Length")));
      c.write(
          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
          "HTTP/1.1 103 Early Hints\r\nLink: </b>; rel=preload\r\n\r\n" + kOk);
    }
  }});
  tk::HttpClient client("127.0.0.1", proxy_->port());
  for (int i = 0; i < 2; ++i) {
    client.send_raw(request_head("POST", "Content-Length: 3\r\n") + "abc");
    auto r = client.read_response();
    ASSERT_EQ(r.status, 200) << proxy_->log();
    EXPECT_EQ(r.body, "hello");
    EXPECT_TRUE(r.keep_alive);
  }
  EXPECT_EQ(up_->connections(), 1u);  // the follow-up reused the pooled connection
}

TEST_F(DaemonHttp, head_204_and_304_answers_carry_no_body_and_keep_both_connections) {  // C05 (b), (c)
  start({[](ScriptConn& c) {
    auto h1 = c.read_head();
    c.write("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 48213\r\n\r\n");  // HEAD: no body
    c.read_head();
    c.write("HTTP/1.1 204 No Content\r\n\r\n");
    c.read_head();
    c.write("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n");
    c.read_head();
    c.write(kOk);
  }});
  tk::HttpClient client("127.0.0.1", proxy_->port(), 5s);
  client.send_raw(request_head("HEAD"));
  auto head = client.read_response(true);
  EXPECT_EQ(head.status, 200) << proxy_->log();
  EXPECT_EQ(head.header("Content-Length"), "48213");  // unchanged, and no body expected
  EXPECT_LT(head.elapsed, 3000ms);
  client.send_raw(request_head("GET"));
  auto no_content = client.read_response();
  EXPECT_EQ(no_content.status, 204);
  EXPECT_TRUE(no_content.body.empty());
  client.send_raw(request_head("GET"));
  auto not_modified = client.read_response();
  EXPECT_EQ(not_modified.status, 304);
  EXPECT_TRUE(not_modified.body.empty());
  client.send_raw(request_head("GET"));
  auto last = client.read_response();
  EXPECT_EQ(last.status, 200);
  EXPECT_EQ(last.body, "hello");
  EXPECT_EQ(up_->connections(), 1u);
}

TEST_F(DaemonHttp, close_delimited_body_is_rechunked_whole_and_the_connection_not_reused) {  // C06 (a)
  std::string xml = "<?xml version=\"1.0\"?><r>";
  while (xml.size() < 300 * 1024) xml += "<e>" + std::to_string(xml.size()) + "</e>";
  xml += "</r>";
  start({[&xml](ScriptConn& c) {
    c.read_head();
    c.write("HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nConnection: close\r\n\r\n" + xml);
    c.close();
  }});
  tk::HttpClient client("127.0.0.1", proxy_->port());
  client.send_raw(request_head("GET"));
  auto r = client.read_response();
  ASSERT_EQ(r.status, 200) << proxy_->log();
  EXPECT_EQ(tk::sha256_hex(r.body), tk::sha256_hex(xml));
  EXPECT_EQ(r.header("Transfer-Encoding"), "chunked");
  EXPECT_FALSE(r.has_header("Content-Length"));  // never an invented length
  client.send_raw(request_head("GET"));
  EXPECT_EQ(client.read_response().status, 200);
  EXPECT_EQ(up_->connections(), 2u);  // the close-delimited connection was not pooled
}

TEST_F(DaemonHttp, truncated_upstream_body_is_visible_to_the_client_and_logged_as_an_error) {  // C06 (b), (c)
  start({[](ScriptConn& c) {
           c.read_head();
           c.write("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/soap+xml\r\nContent-Length: 400\r\n\r\n" +
                   std::string(120, 'x'));
           c.close();
         },
         [](ScriptConn& c) {
           c.read_head();
           c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
           c.close();
         }});
  {
    tk::HttpClient client("127.0.0.1", proxy_->port());
    client.send_raw(request_head("GET"));
    EXPECT_THROW(client.read_response(), tk::HttpClientError);  // 120 of 400 bytes, then close
  }
  {
    tk::HttpClient client("127.0.0.1", proxy_->port());
    client.send_raw(request_head("GET"));
    EXPECT_THROW(client.read_response(), tk::HttpClientError);  // no last chunk, then close
  }
  ASSERT_TRUE(proxy_->wait_for_log("after the response started"));
  EXPECT_NE(proxy_->log().find("upstream_protocol"), std::string::npos);
}

TEST_F(DaemonHttp, stale_pooled_connection_is_replaced_before_any_byte_is_written) {  // C09 (a)
  std::atomic<int> heads{0};
  start({[&heads](ScriptConn& c) {
    auto head = c.read_head();
    c.read_exact(std::stoul(head_field(head, "Content-Length")));
    ++heads;
    c.write(kOk);
    std::this_thread::sleep_for(1500ms);
    c.close();  // idle close (close_notify + FIN) while the connection sits in the proxy's pool
  }});
  tk::HttpClient client("127.0.0.1", proxy_->port());
  client.send_raw(request_head("POST", "Content-Length: 3\r\n") + "one");
  ASSERT_EQ(client.read_response().status, 200) << proxy_->log();
  std::this_thread::sleep_for(2500ms);
  client.send_raw(request_head("POST", "Content-Length: 3\r\n") + "two");
  auto r = client.read_response();
  EXPECT_EQ(r.status, 200) << proxy_->log();
  EXPECT_EQ(heads.load(), 2);  // POST #2 reached the upstream exactly once
  EXPECT_EQ(up_->connections(), 2u);
}

TEST_F(DaemonHttp, request_written_then_reset_is_answered_502_and_never_replayed) {  // C09 (b)
  std::atomic<int> heads{0};
  start({[&heads](ScriptConn& c) {
    auto head = c.read_head();
    c.read_exact(std::stoul(head_field(head, "Content-Length")));
    ++heads;
    c.reset();
  }});
  auto r = tk::http_request(proxy_->port(), {"POST", "/dmp/x", {{"X-Orgproxy-Tenant", kA}}, "payload"});
  EXPECT_EQ(r.status, 502) << proxy_->log();
  EXPECT_EQ(r.header("X-Orgproxy-Error").rfind("upstream_", 0), 0u) << r.header("X-Orgproxy-Error");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(heads.load(), 1);
  EXPECT_EQ(up_->connections(), 1u);
}

TEST_F(DaemonHttp, upstream_soap_fault_is_relayed_byte_identical_without_an_orgproxy_error) {  // C09 (c)
  const std::string fault =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\">"
      "<env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason>"
      "<env:Text xml:lang=\"fr\">DMPCommunicationError</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>";
  start({[&fault](ScriptConn& c) {
    c.read_head();
    c.write("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/soap+xml; charset=utf-8\r\n"
            "Content-Length: " + std::to_string(fault.size()) + "\r\n\r\n" + fault);
  }});
  auto r = tk::http_request(proxy_->port(), {"POST", "/dmp/x", {{"X-Orgproxy-Tenant", kA},
                                                                {"Content-Type", "application/soap+xml"}}, "<e/>"});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, fault);
  EXPECT_FALSE(r.has_header("X-Orgproxy-Error"));
  EXPECT_FALSE(r.header("X-Request-Id").empty());
}

TEST_F(DaemonHttp, upstream_framing_duplicates_collapse_or_fail_and_obs_fold_fails) {  // C01 (e), C03 (f)
  start({[](ScriptConn& c) {
           c.read_head();
           c.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n");
           c.read_head();
           c.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 9\r\n\r\n123456789");
           c.read_to_eof();
         },
         [](ScriptConn& c) {
           c.read_head();
           c.write("HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n");
           c.read_to_eof();
         },
         [](ScriptConn& c) {
           c.read_head();
           c.write(kOk);
         }});
  tk::HttpClient client("127.0.0.1", proxy_->port());
  client.send_raw(request_head("GET"));
  auto same = client.read_response();
  EXPECT_EQ(same.status, 200) << proxy_->log();
  EXPECT_EQ(same.header_values("Content-Length").size(), 1u);
  client.send_raw(request_head("GET"));
  auto differing = client.read_response();
  EXPECT_EQ(differing.status, 502);
  EXPECT_EQ(differing.header("X-Orgproxy-Error"), "upstream_protocol");
  auto folded = tk::http_request(proxy_->port(), {"GET", "/dmp/x", {{"X-Orgproxy-Tenant", kA}}, ""});
  EXPECT_EQ(folded.status, 502);
  EXPECT_EQ(folded.header("X-Orgproxy-Error"), "upstream_protocol");
  auto ok = tk::http_request(proxy_->port(), {"GET", "/dmp/x", {{"X-Orgproxy-Tenant", kA}}, ""});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(up_->connections(), 3u);  // neither failed connection went back to the pool
}

TEST_F(DaemonHttp, response_hop_by_hop_headers_are_removed_and_client_close_is_honoured) {  // C07
  start({[](ScriptConn& c) {
    for (int i = 0; i < 2; ++i) {
      auto head = c.read_head();
      EXPECT_EQ(head_field(head, "Connection"), "");
      c.read_exact(std::stoul(head_field(head, "Content-Length")));
      c.write("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Up-Hop\r\nX-Up-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
              "X-End: kept\r\nContent-Length: 2\r\n\r\nok");
    }
  }});
  tk::HttpClient first("127.0.0.1", proxy_->port());
  first.send_raw("POST /dmp HTTP/1.1\r\nHost: p\r\nconnection: CLOSE, X-Debug-Trace\r\nX-Debug-Trace: 1\r\n"
                 "X-Orgproxy-Tenant: " + kA + "\r\nContent-Length: 3\r\n\r\nabc");
  auto r = first.read_response();
  EXPECT_EQ(r.status, 200) << proxy_->log();
  EXPECT_FALSE(r.has_header("X-Up-Hop"));
  EXPECT_FALSE(r.has_header("Keep-Alive"));
  EXPECT_EQ(r.header("X-End"), "kept");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(first.closed_by_peer(5s));
  auto second = tk::http_request(proxy_->port(), {"POST", "/dmp/x", {{"X-Orgproxy-Tenant", kA}}, "abc"});
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(up_->connections(), 1u);  // the client's close did not tear down the upstream connection
}

TEST_F(DaemonHttp, expect_100_continue_is_relayed_from_the_upstream) {  // C04 (i)
  std::atomic<std::size_t> received{0};
  start({[&received](ScriptConn& c) {
    auto head = c.read_head();
    EXPECT_EQ(head_field(head, "Expect"), "100-continue");
    c.write("HTTP/1.1 100 Continue\r\n\r\n");
    received = c.read_exact(2000000).size();
    c.write(kOk);
  }});
  tk::HttpClient client("127.0.0.1", proxy_->port());
  // Not SOAP: a SOAP request's VIHF is read (and 100 answered by orgproxy) before anything is forwarded.
  client.send_raw(request_head("POST", "Content-Type: application/octet-stream\r\nContent-Length: 2000000\r\n"
                                       "Expect: 100-continue\r\n"));
  auto interim = client.read_response();
  ASSERT_EQ(interim.status, 100) << proxy_->log();
  EXPECT_LT(interim.elapsed, 900ms);  // the upstream's own 100, not our 1 s fallback
  client.send_raw(std::string(2000000, 'b'));
  auto r = client.read_response();
  EXPECT_EQ(r.status, 200) << proxy_->log();
  EXPECT_EQ(received.load(), 2000000u);
}

TEST_F(DaemonHttp, expect_100_continue_early_refusal_reaches_the_client_without_a_100) {  // C04 (ii)
  start({[](ScriptConn& c) {
    c.read_head();
    c.write("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    c.close();
  }});
  tk::HttpClient client("127.0.0.1", proxy_->port(), 10s);
  client.send_raw(request_head("POST", "Content-Length: 2000000\r\nExpect: 100-continue\r\n"));
  auto r = client.read_response();
  EXPECT_EQ(r.status, 413) << proxy_->log();
  EXPECT_FALSE(r.has_header("X-Orgproxy-Error"));  // the upstream's answer, relayed
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(client.closed_by_peer(5s));
}

TEST_F(DaemonHttp, expect_100_continue_with_a_silent_upstream_gets_our_own_100) {  // C04 (iii)
  std::atomic<std::size_t> received{0};
  start({[&received](ScriptConn& c) {
    auto head = c.read_head();
    received = c.read_exact(std::stoul(head_field(head, "Content-Length"))).size();
    c.write(kOk);
  }});
  tk::HttpClient client("127.0.0.1", proxy_->port());
  client.send_raw(request_head("POST", "Content-Length: 100000\r\nExpect: 100-continue\r\n"));
  auto interim = client.read_response();
  ASSERT_EQ(interim.status, 100) << proxy_->log();
  EXPECT_LT(interim.elapsed, 5000ms);
  client.send_raw(std::string(100000, 'c'));
  EXPECT_EQ(client.read_response().status, 200);
  EXPECT_EQ(received.load(), 100000u);
}

}  // namespace
}  // namespace orgproxy::daemon_it
