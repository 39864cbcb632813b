# Debian package (`cpack -G DEB` in a build directory): the daemon, its systemd unit, sysusers/tmpfiles
# snippets, the example configuration under /etc/orgproxy (conffiles), and the operations files.
# Run-time library dependencies come from dpkg-shlibdeps; the PKCS#11 module is a Recommends (a site may
# use its own HSM vendor's module instead of SoftHSM).
include(GNUInstallDirs)

install(FILES ${PROJECT_SOURCE_DIR}/systemd/orgproxy.sysusers DESTINATION lib/sysusers.d RENAME orgproxy.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/orgproxy.tmpfiles DESTINATION lib/tmpfiles.d RENAME orgproxy.conf)
install(FILES ${PROJECT_SOURCE_DIR}/config/examples/orgproxy.yaml DESTINATION /etc/orgproxy)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/config/examples/conf.d DESTINATION /etc/orgproxy)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/config/SCHEMA.md DESTINATION share/doc/orgproxy)
install(FILES ${PROJECT_SOURCE_DIR}/ops/README.md ${PROJECT_SOURCE_DIR}/ops/grafana-dashboard.json
              ${PROJECT_SOURCE_DIR}/ops/prometheus-alerts.yml DESTINATION share/doc/orgproxy/ops)

# Maintainer scripts: create the user and directories (sysusers/tmpfiles) and reload systemd when it runs;
# the service is not enabled nor started by the package (the PIN credential and the sites come first).
set(ORGPROXY_DEB_DIR ${CMAKE_BINARY_DIR}/deb)
file(MAKE_DIRECTORY ${ORGPROXY_DEB_DIR})
file(WRITE ${ORGPROXY_DEB_DIR}/postinst [=[#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if command -v systemd-sysusers >/dev/null 2>&1; then systemd-sysusers orgproxy.conf; fi
  if command -v systemd-tmpfiles >/dev/null 2>&1; then systemd-tmpfiles --create orgproxy.conf; fi
  if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
fi
exit 0
]=])
file(WRITE ${ORGPROXY_DEB_DIR}/postrm [=[#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
exit 0
]=])
file(WRITE ${ORGPROXY_DEB_DIR}/conffiles "/etc/orgproxy/orgproxy.yaml\n/etc/orgproxy/conf.d/cabinet-exemple.yaml\n/etc/orgproxy/conf.d/selarl-exemple.yaml\n")
file(CHMOD ${ORGPROXY_DEB_DIR}/postinst ${ORGPROXY_DEB_DIR}/postrm
     PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME orgproxy)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "orgproxy maintainers <orgproxy@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd (>= 247)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "softhsm2, p11-kit")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus, opensc")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${ORGPROXY_DEB_DIR}/postinst ${ORGPROXY_DEB_DIR}/postrm ${ORGPROXY_DEB_DIR}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
