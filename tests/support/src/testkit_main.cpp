// orgproxy-testkit: the demo's helper. `orgproxy-testkit demo-setup DIR` builds a demo world in DIR (a test
// PKI, a SoftHSM token with three sites' keys generated inside it, their ORG certificates) and writes the
// orgproxy configuration, the nginx configuration of two mock national endpoints (DMP and INSi) and a shell
// file with the ports and paths for scripts/demo.sh.
#include <CLI/CLI.hpp>
#include <iostream>

#include "orgproxy/testkit/demo_setup.hpp"

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
    const auto files = orgproxy::testkit::demo_setup(dir, port);
    std::cout << "demo world in " << dir
              << ": 3 sites, token 'orgproxy-demo', orgproxy on 127.0.0.1:" << files.orgproxy_port
              << ", DMP mock on 127.0.0.1:" << files.dmp_port << ", INSi mock on 127.0.0.1:" << files.insi_port << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "orgproxy-testkit: " << e.what() << "\n";
    return 1;
  }
}
