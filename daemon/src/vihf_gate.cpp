#include "vihf_gate.hpp"

#include <algorithm>
#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <spdlog/spdlog.h>

#include "orgproxy/daemon/access_log.hpp"
#include "orgproxy/daemon/http_rules.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// Chunk framing overhead allowed on top of vihf_max_bytes payload bytes (tiny chunks are legal).
constexpr std::size_t kChunkSlack = 16 * 1024;

std::string_view buffered(const beast::flat_buffer& b) {
  auto d = b.data();
  return {static_cast<const char*>(d.data()), d.size()};
}

// One look at what is buffered: the scan of the envelope's first bytes, and whether more bytes would help.
struct Look {
  VihfScan scan;
  bool need_more = false;
  std::string error;  ///< multipart framing unusable
};

Look look(std::string_view content_type, std::string_view body, bool body_complete, bool chunked,
          std::size_t max_bytes, bool check_only, std::string& scratch) {
  Look out;
  std::string_view payload = body;
  bool payload_complete = body_complete;
  if (chunked) {
    scratch.clear();
    if (!dechunk_prefix(body, max_bytes, scratch, payload_complete)) {
      out.error = "invalid chunked framing";
      return out;
    }
    payload = scratch;
  }
  SoapEnvelopeSpan span = soap_envelope_of(content_type, payload, payload_complete);
  if (!span.ok) {
    out.need_more = span.need_more;
    out.error = std::move(span.error);
    return out;
  }
  // Where the VIHF is only checked, "absent" and "malformed but not hostile" decide alike (forward): a
  // complete envelope the byte scan proves assertion-free and DTD-free needs no parse.
  if (check_only && span.envelope_complete && vihf_surely_absent(span.envelope)) {
    out.scan.status = VihfScan::Status::absent;
    return out;
  }
  out.scan = scan_vihf(span.envelope, span.envelope_complete);
  out.need_more = out.scan.status == VihfScan::Status::incomplete;
  return out;
}

}  // namespace

asio::awaitable<VihfRead> read_vihf(Exchange& x, bool vihf_selector) {
  VihfRead out;
  auto& head = x.req.get();
  const std::string_view content_type = head[http::field::content_type];
  if (!(vihf_selector || x.listener.vihf_check) || !is_soap12(content_type) || x.req.is_done()) co_return out;

  const std::size_t max_bytes = x.listener.vihf_max_bytes;
  const bool chunked = x.req.chunked();
  const auto length = x.req.content_length();
  // The most raw bytes worth buffering: the whole body when it is small, else vihf_max_bytes of payload.
  const std::size_t raw_cap = chunked ? max_bytes + kChunkSlack
                                      : static_cast<std::size_t>(std::min<std::uint64_t>(length.value_or(0), max_bytes));
  if (raw_cap == 0) co_return out;

  if (x.client_version >= 11 && beast::iequals(trim_ows(head[http::field::expect]), "100-continue")) {
    x.down.expires_after(x.listener.idle_timeout);
    auto [ec, n] = co_await asio::async_write(x.down, asio::buffer(kContinue.data(), kContinue.size()),
                                              asio::as_tuple(asio::use_awaitable));
    if (ec) {
      out.abort = true;
      co_return out;
    }
    head.erase(http::field::expect);
  }

  std::string scratch;
  // The body must arrive at a reasonable pace: the same budget as the request head.
  x.down.expires_after(x.listener.header_timeout);
  for (;;) {
    std::string_view raw = buffered(x.down_buffer);
    raw = raw.substr(0, std::min(raw.size(), raw_cap));
    const bool whole_body = !chunked && length && raw.size() >= *length;
    Look l = look(content_type, raw, whole_body, chunked, max_bytes, !vihf_selector, scratch);
    if (!l.error.empty() && !l.need_more) {
      if (!vihf_selector) co_return out;  // no readable envelope: nothing to check, the upstream judges
      out.error = ErrorCode::bad_request;
      out.detail = "SOAP request: " + l.error;
      co_return out;
    }
    if (!l.need_more) {
      if (l.scan.status == VihfScan::Status::found) x.vihf = std::move(l.scan.vihf);
      if (l.scan.status == VihfScan::Status::malformed && (vihf_selector || l.scan.hostile)) {
        out.error = ErrorCode::bad_request;
        out.detail = std::move(l.scan.error);
      }
      co_return out;
    }
    if (raw.size() >= raw_cap || (chunked && scratch.size() >= max_bytes)) {
      // No SOAP envelope within the bound (binary, or an MTOM root part further on): nothing to check,
      // unless the VIHF must select the site. An envelope whose header runs past the bound is refused:
      // the VIHF could hide beyond it.
      if (!vihf_selector && !l.scan.envelope_seen) co_return out;
      out.error = ErrorCode::request_too_large;
      out.detail = "the SOAP header does not end within vihf_max_bytes (" + std::to_string(max_bytes) + ")";
      co_return out;
    }
    auto [ec, n] = co_await x.down.async_read_some(x.down_buffer.prepare(std::max<std::size_t>(
                                                        4096, raw_cap - raw.size())),
                                                    asio::as_tuple(asio::use_awaitable));
    x.down_buffer.commit(n);
    if (ec && n == 0) {
      out.abort = true;
      co_return out;
    }
  }
}

ErrorCode check_vihf(Exchange& x, const TenantState& tenant, std::string& detail) {
  if (!x.vihf) return ErrorCode::none;
  const Vihf& v = *x.vihf;
  if (v.structure_id != tenant.tenant->id) {
    detail = "VIHF Identifiant_Structure " + v.structure_id + " is not site " + tenant.tenant->id;
    return ErrorCode::vihf_mismatch;
  }
  const auto& slots = tenant.identities[purpose_index(config::Purpose::vihf_sign)];
  if (slots.empty()) return ErrorCode::none;
  bool any_loaded = false;
  for (const IdentitySlot& slot : slots) {
    if (!slot.identity || !slot.identity->certificate()) continue;
    any_loaded = true;
    if (issuer_names_subject(v.issuer, X509_get_subject_name(slot.identity->certificate()))) {
      x.vihf_issuer_check = "match";
      return ErrorCode::none;
    }
  }
  if (!any_loaded) {
    // The vihf-sign certificate could not be loaded (its failure is logged at start): nothing to compare.
    x.vihf_issuer_check = "unavailable";
    return ErrorCode::none;
  }
  x.vihf_issuer_check = "mismatch";
  detail = "VIHF Issuer is not the subject of site " + tenant.tenant->id + "'s vihf-sign certificate";
  return ErrorCode::vihf_mismatch;
}

void log_vihf_audit(const AccessRecord& r, const Vihf& v, std::string_view issuer_check) {
  static const std::shared_ptr<spdlog::logger> audit = [] {
    auto l = spdlog::get("audit");
    if (!l) l = spdlog::get("access");
    return l ? l : spdlog::default_logger();
  }();
  fmt::memory_buffer out;
  auto field = [&](std::string_view name, std::string_view value, bool first = false) {
    fmt::format_to(std::back_inserter(out), "{}\"{}\":", first ? "" : ",", name);
    append_json_string(out, value);
  };
  out.push_back('{');
  field("type", "vihf_audit", true);
  field("request_id", r.request_id);
  field("listener", r.listener);
  field("site", r.tenant);
  field("vihf_structure", v.structure_id);
  field("vihf_user", v.name_id);
  field("vihf_mode", v.auth_mode);
  field("vihf_sector", v.sector);
  field("issuer_check", issuer_check);
  field("upstream", r.upstream);
  fmt::format_to(std::back_inserter(out), ",\"status\":{}", r.status);
  field("outcome", r.error == ErrorCode::none ? std::string_view("forwarded") : to_string(r.error));
  out.push_back('}');
  audit->info(std::string_view(out.data(), out.size()));
}

}  // namespace orgproxy::daemon
