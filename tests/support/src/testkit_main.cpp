// orgproxy-testkit: the demo's helper. `orgproxy-testkit demo-setup DIR` builds a demo world in DIR (a test
// PKI, a SoftHSM token with three sites' keys generated inside it, their ORG certificates) and writes the
// orgproxy configuration, the nginx configuration of two mock national endpoints (DMP and INSi) and a shell
// file with the ports and paths for scripts/demo.sh.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/site_world.hpp"

namespace tk = orgproxy::testkit;
namespace fs = std::filesystem;

namespace {

// Single-quoted shell word (the paths come from mkdtemp, but never trust a path in a shell file).
std::string sh(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int demo_setup(const fs::path& dir, std::uint16_t listen_port) {
  fs::create_directories(dir);
  tk::SiteWorld world(dir / "world", tk::three_demo_sites(), {"orgproxy-demo", {}});
  const auto& server = world.upstream_server_cert();

  tk::NginxServerOptions dmp, insi;
  dmp.name = "DMP mock";
  insi.name = "INSi mock";
  for (auto* s : {&dmp, &insi}) {
    s->port = tk::free_loopback_port();
    s->cert_file = server.chain.string();
    s->key_file = server.key.string();
    s->client_ca_file = world.pki().ca_bundle_pem().string();
  }
  const fs::path nginx_dir = dir / "nginx";
  fs::create_directories(nginx_dir / "tmp");
  tk::write_file(nginx_dir / "nginx.conf", tk::nginx_config_text(nginx_dir, {dmp, insi}));

  tk::OrgproxyConfig config = world.base_config();
  config.port = listen_port != 0 ? listen_port : tk::free_loopback_port();
  config.log_level = "info";
  const std::string ca = world.pki().ca_bundle_pem().string();
  const std::string dmp_base = "https://127.0.0.1:" + std::to_string(dmp.port) + "/si-dmp-server/v2/services";
  const std::string insi_base = "https://127.0.0.1:" + std::to_string(insi.port) + "/lps";
  config.upstreams.push_back(tk::make_upstream("dmp", dmp_base, ca, "dmp"));  // environment: test (TEST PKI)
  config.upstreams.push_back(tk::make_upstream("insi", insi_base, ca, "insi-auto"));
  config.routes = {{"/dmp", "dmp"}, {"/insi", "insi"}};
  tk::write_file(dir / "orgproxy.yaml", config.yaml());

  std::ostringstream sites;
  for (const auto& s : world.sites()) {
    sites << s.spec.id << '\t' << s.spec.sector << '\t' << s.spec.name << '\t' << s.identity("dmp").subject_dn
          << '\t' << s.identity("insi-auto").subject_dn << '\n';
  }
  tk::write_file(dir / "sites.tsv", sites.str());

  std::ostringstream env;
  env << "# Written by orgproxy-testkit demo-setup.\n"
      << "SOFTHSM2_CONF=" << sh(world.token().conf_path().string()) << "\n"
      << "ORGPROXY_CONFIG=" << sh((dir / "orgproxy.yaml").string()) << "\n"
      << "ORGPROXY_PORT=" << config.port << "\n"
      << "NGINX_DIR=" << sh(nginx_dir.string()) << "\n"
      << "NGINX_CONF=" << sh((nginx_dir / "nginx.conf").string()) << "\n"
      << "DMP_PORT=" << dmp.port << "\n"
      << "INSI_PORT=" << insi.port << "\n"
      << "SITES_FILE=" << sh((dir / "sites.tsv").string()) << "\n";
  tk::write_file(dir / "demo.env", env.str());
  std::cout << "demo world in " << dir.string() << ": " << world.sites().size() << " sites, token '"
            << world.token().label() << "', orgproxy on 127.0.0.1:" << config.port << ", DMP mock on 127.0.0.1:"
            << dmp.port << ", INSi mock on 127.0.0.1:" << insi.port << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"orgproxy test kit: builds the demo's world (PKI, SoftHSM token, configurations)"};
  app.require_subcommand(1);
  auto* setup = app.add_subcommand("demo-setup", "create the demo PKI, token, orgproxy and nginx configs in DIR");
  std::string dir;
  std::uint16_t port = 0;
  setup->add_option("DIR", dir, "directory to create the demo world in")->required();
  setup->add_option("--listen-port", port, "orgproxy listener port on 127.0.0.1 (default: a free port)");
  CLI11_PARSE(app, argc, argv);
  try {
    return demo_setup(dir, port);
  } catch (const std::exception& e) {
    std::cerr << "orgproxy-testkit: " << e.what() << "\n";
    return 1;
  }
}
