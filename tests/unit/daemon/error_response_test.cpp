// orgproxy's own error answers: the table's statuses, headers, SOAP 1.2 Faults (DESIGN.md error table).
#include <gtest/gtest.h>

#include "orgproxy/daemon/error_response.hpp"

namespace orgproxy::daemon {
namespace {

namespace http = boost::beast::http;

TEST(ErrorTable, every_code_has_the_status_of_the_design_table) {
  EXPECT_EQ(status_of(ErrorCode::bad_request), 400u);
  EXPECT_EQ(status_of(ErrorCode::tenant_missing), 400u);
  EXPECT_EQ(status_of(ErrorCode::unknown_tenant), 403u);
  EXPECT_EQ(status_of(ErrorCode::tenant_ambiguous), 403u);
  EXPECT_EQ(status_of(ErrorCode::identity_missing), 403u);
  EXPECT_EQ(status_of(ErrorCode::no_route), 404u);
  EXPECT_EQ(status_of(ErrorCode::request_too_large), 413u);
  EXPECT_EQ(status_of(ErrorCode::headers_too_large), 431u);
  EXPECT_EQ(status_of(ErrorCode::rate_limited), 429u);
  EXPECT_EQ(status_of(ErrorCode::upstream_connect), 502u);
  EXPECT_EQ(status_of(ErrorCode::upstream_tls), 502u);
  EXPECT_EQ(status_of(ErrorCode::upstream_protocol), 502u);
  EXPECT_EQ(status_of(ErrorCode::identity_unavailable), 503u);
  EXPECT_EQ(status_of(ErrorCode::upstream_timeout), 504u);
  EXPECT_EQ(status_of(ErrorCode::header_timeout), 408u);
  EXPECT_EQ(to_string(ErrorCode::identity_unavailable), "identity_unavailable");
  EXPECT_EQ(to_string(ErrorCode::header_timeout), "header_timeout");
}

TEST(SoapDetection, soap12_and_mtom_with_soap_start_info) {
  EXPECT_TRUE(is_soap12("application/soap+xml"));
  EXPECT_TRUE(is_soap12("Application/SOAP+XML; charset=UTF-8; action=\"urn:x\""));
  EXPECT_TRUE(is_soap12("multipart/related; type=\"application/xop+xml\"; start=\"<root.part@ris.local>\"; "
                        "start-info=\"application/soap+xml\"; boundary=\"uuid:0f1e\""));
  EXPECT_FALSE(is_soap12("multipart/related; type=\"application/xop+xml\"; start-info=\"text/xml\""));
  EXPECT_FALSE(is_soap12("text/xml"));  // SOAP 1.1
  EXPECT_FALSE(is_soap12(""));
}

TEST(ErrorAnswerTest, plain_answer_has_code_request_id_and_close) {
  auto res = make_error_response({ErrorCode::unknown_tenant, "00112233aabbccdd", "tenant is not configured"});
  EXPECT_EQ(res.result_int(), 403u);
  EXPECT_EQ(res["X-Orgproxy-Error"], "unknown_tenant");
  EXPECT_EQ(res["X-Request-Id"], "00112233aabbccdd");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(res[http::field::content_length], std::to_string(res.body().size()));
  EXPECT_NE(res.body().find("unknown_tenant"), std::string::npos);
}

TEST(ErrorAnswerTest, soap_client_errors_are_sender_faults_and_server_errors_receiver_faults) {
  ErrorAnswer a{ErrorCode::identity_missing, "id1", "tenant has no identity of purpose dmp", true};
  a.keep_alive = true;
  auto sender = make_error_response(a);
  EXPECT_EQ(sender.result_int(), 403u);
  EXPECT_TRUE(sender.keep_alive());
  EXPECT_EQ(sender[http::field::content_type].substr(0, 20), "application/soap+xml");
  EXPECT_NE(sender.body().find("<env:Value>env:Sender</env:Value>"), std::string::npos);
  EXPECT_NE(sender.body().find(">identity_missing</orgproxy:error>"), std::string::npos);

  a.code = ErrorCode::upstream_tls;
  auto receiver = make_error_response(a);
  EXPECT_EQ(receiver.result_int(), 502u);
  EXPECT_EQ(receiver["X-Orgproxy-Error"], "upstream_tls");
  EXPECT_NE(receiver.body().find("<env:Value>env:Receiver</env:Value>"), std::string::npos);
}

TEST(ErrorAnswerTest, soap_binding_statuses_switch_to_400_and_500) {
  ErrorAnswer a{ErrorCode::unknown_tenant, "id", "", true, true};
  EXPECT_EQ(make_error_response(a).result_int(), 400u);
  a.code = ErrorCode::upstream_timeout;
  auto r = make_error_response(a);
  EXPECT_EQ(r.result_int(), 500u);
  EXPECT_EQ(r["X-Orgproxy-Error"], "upstream_timeout");
  a.soap12 = false;  // the setting only concerns SOAP clients
  EXPECT_EQ(make_error_response(a).result_int(), 504u);
}

TEST(ErrorAnswerTest, detail_is_xml_escaped_in_faults) {
  auto r = make_error_response({ErrorCode::bad_request, "id", "a<b>&\"c\"", true});
  EXPECT_NE(r.body().find("a&lt;b&gt;&amp;&quot;c&quot;"), std::string::npos);
  EXPECT_EQ(r.body().find("a<b>"), std::string::npos);
}

}  // namespace
}  // namespace orgproxy::daemon
