#include "orgproxy/testkit/demo_setup.hpp"

#include <sstream>

#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/site_world.hpp"

namespace orgproxy::testkit {
namespace {

namespace fs = std::filesystem;

// Single-quoted shell word (the paths come from mkdtemp, but never trust a path in a shell file).
std::string sh(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

DemoFiles demo_setup(const fs::path& dir, std::uint16_t listen_port) {
  fs::create_directories(dir);
  SiteWorldOptions options;
  options.token_label = "orgproxy-demo";
  SiteWorld world(dir / "world", three_demo_sites(), options);
  const auto& server = world.upstream_server_cert();

  DemoFiles files;
  NginxServerOptions dmp, insi;
  dmp.name = "DMP mock";
  insi.name = "INSi mock";
  for (auto* s : {&dmp, &insi}) {
    s->port = free_loopback_port();
    s->cert_file = server.chain.string();
    s->key_file = server.key.string();
    s->client_ca_file = world.pki().ca_bundle_pem().string();
  }
  files.dmp_port = dmp.port;
  files.insi_port = insi.port;
  files.nginx_dir = dir / "nginx";
  files.nginx_config = files.nginx_dir / "nginx.conf";
  fs::create_directories(files.nginx_dir / "tmp");
  write_file(files.nginx_config, nginx_config_text(files.nginx_dir, {dmp, insi}));

  OrgproxyConfig config = world.base_config();
  config.port = listen_port != 0 ? listen_port : free_loopback_port();
  config.log_level = "info";
  const std::string ca = world.pki().ca_bundle_pem().string();
  const std::string dmp_base = "https://127.0.0.1:" + std::to_string(dmp.port) + "/si-dmp-server/v2/services";
  const std::string insi_base = "https://127.0.0.1:" + std::to_string(insi.port) + "/lps";
  config.upstreams.push_back(make_upstream("dmp", dmp_base, ca, "dmp"));  // environment: test (TEST PKI)
  config.upstreams.push_back(make_upstream("insi", insi_base, ca, "insi-auto"));
  config.routes = {{"/dmp", "dmp"}, {"/insi", "insi"}};
  files.orgproxy_port = config.port;
  files.orgproxy_config = dir / "orgproxy.yaml";
  write_file(files.orgproxy_config, config.yaml());
  files.softhsm_conf = world.token().conf_path();

  std::ostringstream sites;
  for (const auto& s : world.sites()) {
    sites << s.spec.id << '\t' << s.spec.sector << '\t' << s.spec.name << '\t' << s.identity("dmp").subject_dn << '\t'
          << s.identity("insi-auto").subject_dn << '\n';
  }
  files.sites_file = dir / "sites.tsv";
  write_file(files.sites_file, sites.str());

  std::ostringstream env;
  env << "# Written by orgproxy-testkit demo-setup.\n"
      << "SOFTHSM2_CONF=" << sh(files.softhsm_conf.string()) << "\n"
      << "ORGPROXY_CONFIG=" << sh(files.orgproxy_config.string()) << "\n"
      << "ORGPROXY_PORT=" << files.orgproxy_port << "\n"
      << "NGINX_DIR=" << sh(files.nginx_dir.string()) << "\n"
      << "NGINX_CONF=" << sh(files.nginx_config.string()) << "\n"
      << "DMP_PORT=" << files.dmp_port << "\n"
      << "INSI_PORT=" << files.insi_port << "\n"
      << "SITES_FILE=" << sh(files.sites_file.string()) << "\n";
  files.env_file = dir / "demo.env";
  write_file(files.env_file, env.str());
  return files;
}

}  // namespace orgproxy::testkit
