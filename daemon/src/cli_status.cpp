#include "orgproxy/daemon/cli_status.hpp"

#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::daemon {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

struct HostPort {
  std::string host;
  std::string port;
};

// http://host:port[/] only: the admin listener speaks plain HTTP on loopback or behind a bearer token.
bool parse_admin_url(const std::string& url, HostPort& hp) {
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return false;
  std::string rest = url.substr(scheme.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  if (rest.empty()) return false;
  if (rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return false;
    hp.host = rest.substr(1, close - 1);
    hp.port = close + 1 < rest.size() && rest[close + 1] == ':' ? rest.substr(close + 2) : "80";
  } else {
    auto colon = rest.rfind(':');
    hp.host = rest.substr(0, colon);
    hp.port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
  }
  return !hp.host.empty() && !hp.port.empty() && hp.port.find_first_not_of("0123456789") == std::string::npos;
}

std::string read_token(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read the token file " + file);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  return token;
}

std::string cell(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void print_table(const json& doc, std::ostream& out) {
  out << std::left << std::setw(17) << "SITE" << std::setw(28) << "NAME" << std::setw(11) << "PURPOSE"
      << std::setw(8) << "USABLE" << std::setw(8) << "DAYS" << "NOT AFTER / REASON\n";
  for (const auto& s : doc.at("sites")) {
    std::string name = cell(s.value("name", json()));
    if (name.size() > 26) name = name.substr(0, 25) + "…";
    bool first = true;
    for (const auto& i : s.at("identities")) {
      out << std::setw(17) << (first ? cell(s.at("id")) : "") << std::setw(28) << (first ? name : "")
          << std::setw(11) << cell(i.at("purpose")) << std::setw(8) << (i.at("usable").get<bool>() ? "yes" : "NO")
          << std::setw(8) << cell(i.value("days_to_expiry", json())) << cell(i.value("not_after", json()));
      if (i.contains("reason")) out << "  " << i.at("reason").get<std::string>();
      out << '\n';
      first = false;
    }
    for (const auto& u : s.at("upstreams")) {
      out << std::setw(17) << "" << "  → " << std::setw(10) << cell(u.at("upstream")) << " requests "
          << std::setw(6) << cell(u.at("requests")) << " last ok " << std::setw(21) << cell(u.at("last_success"))
          << " last failure " << cell(u.at("last_failure"));
      if (u.contains("last_failure_error"))
        out << " (" << cell(u.at("last_failure_status")) << " " << cell(u.at("last_failure_error")) << ")";
      out << '\n';
    }
  }
}

}  // namespace

int run_sites_status(const SitesStatusArgs& args, std::ostream& out, std::ostream& err) {
  HostPort hp;
  if (!parse_admin_url(args.admin_url, hp)) {
    err << "sites status: --admin " << args.admin_url << " is not an http://host:port URL\n";
    return 2;
  }
  http::response<http::string_body> res;
  try {
    std::string token = args.token_file.empty() ? std::string() : read_token(args.token_file);
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(args.timeout_s));
    asio::ip::tcp::resolver resolver(io);
    stream.connect(resolver.resolve(hp.host, hp.port));
    http::request<http::empty_body> req{http::verb::get, "/sites", 11};
    req.set(http::field::host, hp.host);
    req.set(http::field::user_agent, "orgproxy-sites-status");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(stream, buffer, parser);
    res = parser.release();
  } catch (const boost::system::system_error& e) {
    err << "sites status: " << args.admin_url << ": " << e.code().message() << '\n';
    return 2;
  } catch (const std::exception& e) {
    err << "sites status: " << args.admin_url << ": " << e.what() << '\n';
    return 2;
  }
  if (res.result_int() != 200) {
    err << "sites status: " << args.admin_url << "/sites answered " << res.result_int()
        << (res.result_int() == 401 ? " (give the admin token with --token-file)" : "") << '\n';
    return 2;
  }
  json doc;
  try {
    doc = json::parse(res.body());
    bool all_usable = true;
    for (const auto& s : doc.at("sites"))
      for (const auto& i : s.at("identities")) all_usable = all_usable && i.at("usable").get<bool>();
    if (args.json)
      out << doc.dump(2) << '\n';
    else
      print_table(doc, out);
    return all_usable ? 0 : 1;
  } catch (const std::exception& e) {
    err << "sites status: " << args.admin_url << "/sites: unexpected answer: " << e.what() << '\n';
    return 2;
  }
}

void add_sites_status_command(CLI::App& app) {
  CLI::App* sites = nullptr;
  for (auto* sub : app.get_subcommands([](CLI::App* a) { return a->get_name() == "sites"; })) sites = sub;
  if (!sites) {
    sites = app.add_subcommand("sites", "site operations");
    sites->require_subcommand(1);
  }
  auto a = std::make_shared<SitesStatusArgs>();
  auto* status = sites->add_subcommand("status", "sites of a running daemon: identities, expiry, last upstream outcome");
  status->add_option("--admin", a->admin_url, "admin listener URL (http://host:port)")->capture_default_str();
  status->add_option("--token-file", a->token_file, "file holding the admin bearer token");
  status->add_flag("--json", a->json, "JSON output (the daemon's /sites document)");
  status->add_option("--timeout", a->timeout_s, "seconds")->check(CLI::Range(1u, 600u));
  status->callback([a] {
    int rc = run_sites_status(*a, std::cout, std::cerr);
    std::cout.flush();
    throw CLI::RuntimeError(rc);
  });
}

}  // namespace orgproxy::daemon
