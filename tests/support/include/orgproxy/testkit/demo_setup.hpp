// The demo's world (used by `orgproxy-testkit demo-setup` and tested like any fixture).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace orgproxy::testkit {

/// What demo_setup wrote, with the ports it chose.
struct DemoFiles {
  std::filesystem::path orgproxy_config;  ///< DIR/orgproxy.yaml
  std::filesystem::path nginx_dir;        ///< DIR/nginx (nginx prefix: logs, pid, temp files)
  std::filesystem::path nginx_config;     ///< DIR/nginx/nginx.conf
  std::filesystem::path softhsm_conf;     ///< the token's softhsm2.conf (SOFTHSM2_CONF for the daemon)
  std::filesystem::path sites_file;       ///< DIR/sites.tsv: id, sector, name, dmp DN, insi-auto DN per line
  std::filesystem::path env_file;         ///< DIR/demo.env: the above as shell variables
  std::uint16_t orgproxy_port = 0;
  std::uint16_t dmp_port = 0;
  std::uint16_t insi_port = 0;
};

/// Builds the demo in `dir`: a test PKI, a SoftHSM token `orgproxy-demo` with three sites (SA09, SA07, SA08,
/// three_demo_sites()), each with a `dmp` identity (CN = site name) and an `insi-auto` identity
/// (CN = INSI-AUTO) whose keys are generated in the token, non-extractable; the orgproxy configuration
/// (listener 127.0.0.1:`listen_port`, or a free port when 0; routes /dmp and /insi); the nginx
/// configuration of two mutual-TLS mock endpoints (DMP under /si-dmp-server/v2/services, INSi under /lps).
/// Throws std::runtime_error on any failure.
DemoFiles demo_setup(const std::filesystem::path& dir, std::uint16_t listen_port = 0);

}  // namespace orgproxy::testkit
