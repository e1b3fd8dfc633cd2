# Installation, the systemd unit and the Debian package.
#
#   cmake --install build/release [--prefix /usr]
#   cd build/release && cpack -G DEB        -> lonc_<version>_<arch>.deb
#
# The unit names the installed binary, so it is written at install time from
# the prefix in force then (cmake --install --prefix, or /usr inside cpack).
# For tests, build/<preset>/systemd/lonc.service names the binary in the
# build tree, and build/<preset>/man/ holds the man pages (MANPATH).

install(TARGETS lonc RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS lonctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(LONC_UNIT_TEMPLATE ${PROJECT_SOURCE_DIR}/systemd/lonc.service.in)
set(LONC_UNIT_DIR lib/systemd/system)

# The unit for tests: ExecStart and ExecReload are the binaries just built.
set(LONC_EXEC "$<TARGET_FILE:lonc>")
set(LONCTL_EXEC "$<TARGET_FILE:lonctl>")
configure_file(${LONC_UNIT_TEMPLATE} ${PROJECT_BINARY_DIR}/systemd/lonc.service.genex @ONLY)
file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/systemd/lonc.service
     INPUT ${PROJECT_BINARY_DIR}/systemd/lonc.service.genex)
unset(LONC_EXEC)
unset(LONCTL_EXEC)

# The installed unit: ExecStart is <prefix>/sbin/lonc (ExecReload
# <prefix>/bin/lonctl) for the prefix of this installation.
# (One staging file per destination: installations may run concurrently.)
install(CODE "
  set(LONC_EXEC \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SBINDIR}/lonc\")
  set(LONCTL_EXEC \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/lonctl\")
  string(MD5 lonc_dest \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
  set(lonc_unit \"${PROJECT_BINARY_DIR}/systemd/install-\${lonc_dest}/lonc.service\")
  configure_file(\"${LONC_UNIT_TEMPLATE}\" \"\${lonc_unit}\" @ONLY)
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${LONC_UNIT_DIR}\" TYPE FILE
       FILES \"\${lonc_unit}\")
")

# Man pages, also copied into the build tree for tests and for
# `systemd-analyze verify` (Documentation=man:lonc(8)).
foreach(page lonc.8 lonctl.1)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  configure_file(${PROJECT_SOURCE_DIR}/man/${page} ${PROJECT_BINARY_DIR}/man/man${section}/${page} COPYONLY)
  install(FILES ${PROJECT_SOURCE_DIR}/man/${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()

# Commented examples. Nothing goes to /etc: LON-CAPA owns access.conf and
# hosts.tab, and loncron already rotates lonc.log (see README).
install(FILES
  ${PROJECT_SOURCE_DIR}/conf/access.conf
  ${PROJECT_SOURCE_DIR}/conf/hosts.tab
  ${PROJECT_SOURCE_DIR}/conf/lonc.ini
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${PROJECT_SOURCE_DIR}/conf/logrotate.d/lonc
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/logrotate.d)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE
  DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ------------------------------------------------------------- Debian package
set(CPACK_PACKAGE_NAME lonc)
set(CPACK_PACKAGE_VENDOR "lonc project")
set(CPACK_PACKAGE_CONTACT "lonc maintainers <lonc@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "LON-CAPA connection daemon (C++ rewrite of lonc)")
set(CPACK_PACKAGE_DESCRIPTION "lonc relays one-line requests from LON-CAPA's web workers
over persistent IDEA-encrypted links to each peer's lond. It is a drop-in
replacement for the Perl lonc, with a systemd unit, lonctl, man pages and
commented example configuration.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
# Install with DESTDIR and the prefix /usr, so the install-time prefix (and
# the unit's ExecStart) is /usr, not the staging directory or /usr/local.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://loncapa.org/")
# Shared libraries (libcrypto++8, libspdlog1.10, libfmt9, libsystemd0, libc6,
# libstdc++6, and whatever lonc links later) come from dpkg-shlibdeps; list
# here what the binaries do not link but the package needs.
set(LONC_DEB_EXTRA_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
list(JOIN LONC_DEB_EXTRA_DEPENDS ", " CPACK_DEBIAN_PACKAGE_DEPENDS)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "logrotate")
configure_file(${PROJECT_SOURCE_DIR}/packaging/debian/postinst
  ${PROJECT_BINARY_DIR}/packaging/postinst @ONLY
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/packaging/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
