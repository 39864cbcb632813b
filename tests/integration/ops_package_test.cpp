// Operations, packaging: `cpack -G DEB` from this build tree gives a .deb whose control fields and contents
// are those an install needs; unpacked into a temporary root (dpkg -x, nothing installed on this machine),
// its binary runs `--version` and `check-config --offline` on the packaged example configuration.
#include <gtest/gtest.h>

#include <filesystem>

#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;

TEST(OpsPackage, deb_declares_dependencies_ships_unit_and_example_and_its_binary_runs) {
  tk::TempDir tmp("ops-deb");
  const std::string build = ORGPROXY_BUILD_DIR;
  auto pack = tk::run_command({"cpack", "-G", "DEB", "--config", build + "/CPackConfig.cmake", "-B", tmp.path().string()},
                              {}, std::chrono::minutes(5));
  ASSERT_EQ(pack.exit_code, 0) << pack.output;
  std::string deb;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
    if (e.path().extension() == ".deb") deb = e.path().string();
  ASSERT_FALSE(deb.empty()) << pack.output;

  auto field = [&](const std::string& name) {
    auto r = tk::run_command({"dpkg-deb", "-f", deb, name});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  };
  EXPECT_EQ(field("Package"), "orgproxy\n");
  EXPECT_EQ(field("Version"), "0.1.0\n");
  EXPECT_EQ(field("Architecture"), "amd64\n");
  const std::string depends = field("Depends");
  // dpkg-shlibdeps found the run-time libraries the binary links.
  for (const char* lib : {"libc6", "libssl3", "libp11-kit0", "libyaml-cpp0.7", "systemd"})
    EXPECT_NE(depends.find(lib), std::string::npos) << lib << " not in Depends: " << depends;
  EXPECT_NE(field("Recommends").find("softhsm2"), std::string::npos);

  auto contents = tk::run_command({"dpkg-deb", "-c", deb});
  ASSERT_EQ(contents.exit_code, 0);
  for (const char* path : {"./usr/bin/orgproxy", "./usr/lib/systemd/system/orgproxy.service",
                           "./usr/lib/sysusers.d/orgproxy.conf", "./usr/lib/tmpfiles.d/orgproxy.conf",
                           "./etc/orgproxy/orgproxy.yaml", "./etc/orgproxy/conf.d/cabinet-exemple.yaml",
                           "./usr/share/doc/orgproxy/ops/prometheus-alerts.yml"})
    EXPECT_NE(contents.output.find(path), std::string::npos) << path << "\n" << contents.output;
  auto control = tk::run_command({"dpkg-deb", "-I", deb});
  EXPECT_NE(control.output.find("conffiles"), std::string::npos) << control.output;
  EXPECT_NE(control.output.find("postinst"), std::string::npos) << control.output;

  const auto root = tmp.subdir("root");
  auto unpack = tk::run_command({"dpkg", "-x", deb, root.string()});
  ASSERT_EQ(unpack.exit_code, 0) << unpack.output;
  const std::string binary = (root / "usr/bin/orgproxy").string();
  auto version = tk::run_command({binary, "--version"});
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_NE(version.output.find("orgproxy 0.1.0"), std::string::npos) << version.output;
  const std::string example = (root / "etc/orgproxy/orgproxy.yaml").string();
  auto check = tk::run_command({binary, "check-config", "--config", example, "--offline"});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find(example), std::string::npos) << check.output;
  // Negative control: the same binary refuses a broken configuration.
  auto broken = tk::run_command({binary, "check-config", "--config", (root / "usr/bin/orgproxy").string(), "--offline"});
  EXPECT_NE(broken.exit_code, 0);
}
