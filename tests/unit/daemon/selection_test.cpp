// Tenant selection: every configured selector is evaluated and those that yield must agree (DESIGN.md).
#include <gtest/gtest.h>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "orgproxy/daemon/selection.hpp"

namespace orgproxy::daemon {
namespace {

namespace http = boost::beast::http;
constexpr std::string_view kTenantA = "312345678200002";
constexpr std::string_view kTenantB = "498765432103017";

config::Listener listener_with(std::vector<config::SelectorKind> kinds) {
  config::Listener l;
  l.name = "ris";
  l.selectors = std::move(kinds);
  return l;
}

// The selection input of a request with header fields `f` and path `path` (the other sources empty); the
// with_* helpers set one more source. Built member by member: the struct grows as selectors are added.
SelectionInput request(const http::fields& f, std::string_view path) {
  SelectionInput in;
  in.fields = &f;
  in.path = path;
  return in;
}
SelectionInput with_source(SelectionInput in, std::string_view tenant) {
  in.source_tenant = tenant;
  return in;
}
SelectionInput with_vihf(SelectionInput in, std::string_view structure) {
  in.vihf_structure = structure;
  return in;
}

TEST(TenantSelection, header_selector_yields_the_header_value) {
  auto l = listener_with({config::SelectorKind::header});
  TenantSelector sel(l);
  http::fields f;
  f.insert("x-orgproxy-tenant", std::string(kTenantA) + " ");
  auto s = sel.select(request(f, "/dmp/registry"));
  EXPECT_EQ(s.error, ErrorCode::none);
  EXPECT_EQ(s.tenant_id, kTenantA);
  EXPECT_EQ(s.route_path, "/dmp/registry");
  EXPECT_EQ(sel.selection_header(), "X-Orgproxy-Tenant");
}

TEST(TenantSelection, no_selector_yielding_is_tenant_missing) {
  auto l = listener_with({config::SelectorKind::header, config::SelectorKind::path});
  TenantSelector sel(l);
  http::fields f;
  f.insert("X-Other", "1");
  EXPECT_EQ(sel.select(request(f, "/dmp")).error, ErrorCode::tenant_missing);
}

TEST(TenantSelection, differing_repeated_headers_are_ambiguous_identical_ones_agree) {
  auto l = listener_with({config::SelectorKind::header});
  TenantSelector sel(l);
  http::fields same;
  same.insert("X-Orgproxy-Tenant", kTenantA);
  same.insert("X-Other", "between");
  same.insert("X-Orgproxy-Tenant", kTenantA);
  EXPECT_EQ(sel.select(request(same, "/dmp")).tenant_id, kTenantA);
  http::fields differ;
  differ.insert("X-Orgproxy-Tenant", kTenantA);
  differ.insert("X-Other", "between");
  differ.insert("X-Orgproxy-Tenant", kTenantB);
  EXPECT_EQ(sel.select(request(differ, "/dmp")).error, ErrorCode::tenant_ambiguous);
}

// The data path parses heads into a HeadArena (head_fields): the same votes as plain fields, the arena's
// copy taking precedence; the arena reused after reset() for the next request holds only that request's fields.
TEST(TenantSelection, header_selector_reads_arena_fields_like_plain_fields) {
  auto l = listener_with({config::SelectorKind::header});
  TenantSelector sel(l);
  HeadArena arena;
  {
    HeadFields agree(arena.allocator());
    agree.insert("X-Orgproxy-Tenant", kTenantA);
    agree.insert("X-Other", "between");
    agree.insert("x-orgproxy-tenant", std::string(kTenantA) + "\t");
    SelectionInput in;
    in.path = "/dmp";
    in.head_fields = &agree;
    auto s = sel.select(in);
    EXPECT_EQ(s.error, ErrorCode::none);
    EXPECT_EQ(s.tenant_id, kTenantA);
    // Plain fields naming another tenant are not consulted when the arena's are given.
    http::fields other;
    other.insert("X-Orgproxy-Tenant", kTenantB);
    in.fields = &other;
    EXPECT_EQ(sel.select(in).tenant_id, kTenantA);
  }
  arena.reset();
  {
    HeadFields differ(arena.allocator());
    differ.insert("X-Orgproxy-Tenant", kTenantA);
    differ.insert("X-Orgproxy-Tenant", kTenantB);
    SelectionInput in;
    in.path = "/dmp";
    in.head_fields = &differ;
    EXPECT_EQ(sel.select(in).error, ErrorCode::tenant_ambiguous);
  }
  arena.reset();
  {
    HeadFields empty_value(arena.allocator());
    empty_value.insert("X-Orgproxy-Tenant", " ");
    SelectionInput in;
    in.path = "/dmp";
    in.head_fields = &empty_value;
    EXPECT_EQ(sel.select(in).error, ErrorCode::bad_request);
    HeadFields none(arena.allocator());
    none.insert("X-Other", "1");
    in.head_fields = &none;
    EXPECT_EQ(sel.select(in).error, ErrorCode::tenant_missing);
  }
}

TEST(TenantSelection, header_and_path_must_agree) {
  auto l = listener_with({config::SelectorKind::header, config::SelectorKind::path});
  TenantSelector sel(l);
  http::fields f;
  f.insert("X-Orgproxy-Tenant", kTenantA);
  std::string agree = "/sites/" + std::string(kTenantA) + "/dmp/registry";
  auto ok = sel.select(request(f, agree));
  EXPECT_EQ(ok.error, ErrorCode::none);
  EXPECT_EQ(ok.tenant_id, kTenantA);
  EXPECT_EQ(ok.route_path, "/dmp/registry");  // the selector prefix is not routed nor forwarded
  std::string disagree = "/sites/" + std::string(kTenantB) + "/dmp/registry";
  EXPECT_EQ(sel.select(request(f, disagree)).error, ErrorCode::tenant_ambiguous);
}

TEST(TenantSelection, path_alone_selects_and_is_ignored_when_not_configured) {
  std::string path = "/sites/" + std::string(kTenantB) + "/insi";
  http::fields none;
  auto with_path = listener_with({config::SelectorKind::path});
  TenantSelector sel(with_path);
  auto s = sel.select(request(none, path));
  EXPECT_EQ(s.tenant_id, kTenantB);
  EXPECT_EQ(s.route_path, "/insi");
  auto header_only = listener_with({config::SelectorKind::header});
  TenantSelector hsel(header_only);
  EXPECT_EQ(hsel.select(request(none, path)).error, ErrorCode::tenant_missing);
  EXPECT_EQ(hsel.selection_header(), "X-Orgproxy-Tenant");
  EXPECT_EQ(TenantSelector(with_path).selection_header(), "");
}

TEST(TenantSelection, fixed_tenant_must_agree_with_the_header) {
  auto l = listener_with({config::SelectorKind::fixed, config::SelectorKind::header});
  l.fixed_tenant = std::string(kTenantA);
  TenantSelector sel(l);
  http::fields none;
  EXPECT_EQ(sel.select(request(none, "/dmp")).tenant_id, kTenantA);
  http::fields other;
  other.insert("X-Orgproxy-Tenant", kTenantB);
  EXPECT_EQ(sel.select(request(other, "/dmp")).error, ErrorCode::tenant_ambiguous);
}

TEST(TenantSelection, custom_header_name_and_empty_value) {
  auto l = listener_with({config::SelectorKind::header});
  l.tenant_header = "X-Site";
  TenantSelector sel(l);
  http::fields f;
  f.insert("X-Orgproxy-Tenant", kTenantA);  // not the configured header
  EXPECT_EQ(sel.select(request(f, "/dmp")).error, ErrorCode::tenant_missing);
  http::fields empty;
  empty.insert("x-site", "  ");
  EXPECT_EQ(sel.select(request(empty, "/dmp")).error, ErrorCode::bad_request);
}

TEST(TenantSelection, client_cert_selector_votes_with_the_others) {
  auto l = listener_with({config::SelectorKind::header, config::SelectorKind::client_cert});
  TenantSelector sel(l);
  EXPECT_TRUE(sel.client_cert_enabled());
  http::fields none;
  SelectionInput by_cert = request(none, "/dmp");
  by_cert.client_cert_tenant = kTenantA;
  Selection alone = sel.select(by_cert);
  ASSERT_EQ(alone.error, ErrorCode::none);
  EXPECT_EQ(alone.tenant_id, kTenantA);

  http::fields same;
  same.insert("X-Orgproxy-Tenant", kTenantA);
  by_cert.fields = &same;
  EXPECT_EQ(sel.select(by_cert).error, ErrorCode::none);
  http::fields other;
  other.insert("X-Orgproxy-Tenant", kTenantB);
  by_cert.fields = &other;
  EXPECT_EQ(sel.select(by_cert).error, ErrorCode::tenant_ambiguous);

  SelectionInput conflicting = request(none, "/dmp");
  conflicting.client_cert_tenant = kTenantA;
  conflicting.client_cert_conflict = true;
  EXPECT_EQ(sel.select(conflicting).error, ErrorCode::tenant_ambiguous);
}

TEST(TenantSelection, client_cert_tenant_is_ignored_when_the_selector_is_not_configured) {
  auto l = listener_with({config::SelectorKind::header});
  TenantSelector sel(l);
  http::fields f;
  f.insert("X-Orgproxy-Tenant", kTenantB);
  SelectionInput in = request(f, "/dmp");
  in.client_cert_tenant = kTenantA;
  Selection s = sel.select(in);
  ASSERT_EQ(s.error, ErrorCode::none);
  EXPECT_EQ(s.tenant_id, kTenantB);
}

TEST(TenantSelection, fixed_and_source_disagreeing_is_ambiguous) {
  auto l = listener_with({config::SelectorKind::fixed, config::SelectorKind::source});
  l.fixed_tenant = std::string(kTenantA);
  TenantSelector sel(l);
  http::fields none;
  EXPECT_EQ(sel.select(with_source(request(none, "/dmp"), kTenantA)).error, ErrorCode::none);
  EXPECT_EQ(sel.select(with_source(request(none, "/dmp"), kTenantB)).error, ErrorCode::tenant_ambiguous);
}

TEST(TenantSelection, vihf_alone_selects_and_a_disagreeing_vihf_is_a_vihf_mismatch) {
  auto l = listener_with({config::SelectorKind::header, config::SelectorKind::vihf});
  TenantSelector sel(l);
  http::fields none;
  Selection alone = sel.select(with_vihf(request(none, "/dmp"), "312345678200002"));
  ASSERT_EQ(alone.error, ErrorCode::none);
  EXPECT_EQ(alone.tenant_id, "312345678200002");
  http::fields header;
  header.set("X-Orgproxy-Tenant", "498765432103017");
  EXPECT_EQ(sel.select(with_vihf(request(header, "/dmp"), "312345678200002")).error, ErrorCode::vihf_mismatch);
  Selection agree = sel.select(with_vihf(request(header, "/dmp"), "498765432103017"));
  ASSERT_EQ(agree.error, ErrorCode::none);
  EXPECT_EQ(agree.tenant_id, "498765432103017");
  // Without the vihf selector, the VIHF does not vote (vihf_check compares it after selection).
  auto h = listener_with({config::SelectorKind::header});
  EXPECT_EQ(TenantSelector(h).select(with_vihf(request(none, "/dmp"), "312345678200002")).error, ErrorCode::tenant_missing);
}

}  // namespace
}  // namespace orgproxy::daemon
