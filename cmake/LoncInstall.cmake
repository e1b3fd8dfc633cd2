# Installation, the systemd unit and the Debian and RPM packages.
#
#   cmake --install build/release [--prefix /usr]
#   cd build/release && cpack -G DEB        -> lonc_<version>_<arch>.deb
#   cd build/release && cpack -G RPM        -> lonc-<version>-1.<arch>.rpm
#
# The unit names the installed binary, so it is written at install time from
# the prefix in force then (cmake --install --prefix, or /usr inside cpack).
# For tests, build/<preset>/systemd/lonc.service names the binary in the
# build tree, and build/<preset>/man/ holds the man pages (MANPATH).
# docs/packaging.md says what the packages contain and do.

# Directories created 0755 whatever the umask of the one who installs.
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

# lonc_gzip(IN OUT): OUT is IN compressed with gzip -9n at build time.
# The command makes OUT's directory itself: Ninja would, Make does not.
function(lonc_gzip in out)
  get_filename_component(dir ${out} DIRECTORY)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND sh -c "gzip -9nc \"$1\" > \"$2\"" sh ${in} ${out}
    DEPENDS ${in} VERBATIM)
endfunction()

install(TARGETS lonc RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS lonctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Stripping (install --strip, cpack) also drops the compiler's .comment and
# .note sections, as Debian's dh_strip does.
install(CODE "
  if(CMAKE_INSTALL_DO_STRIP)
    foreach(bin ${CMAKE_INSTALL_SBINDIR}/lonc ${CMAKE_INSTALL_BINDIR}/lonctl)
      execute_process(COMMAND \"${CMAKE_STRIP}\" --remove-section=.comment --remove-section=.note
                              \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/\${bin}\"
                      COMMAND_ERROR_IS_FATAL ANY)
    endforeach()
  endif()
")

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
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES \"\${lonc_unit}\")
")
# The directories the unit's sandbox binds in; the packages' scripts run
# systemd-tmpfiles --create on it.
install(FILES ${PROJECT_SOURCE_DIR}/systemd/lonc.tmpfiles.conf
  DESTINATION lib/tmpfiles.d RENAME lonc.conf)

# /etc/lonc/lonc.ini, the settings file (a conffile in the packages): /etc
# for the prefix /usr, <prefix>/etc otherwise, decided at install time like
# the unit's ExecStart.
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(lonc_etc /etc)
  else()
    set(lonc_etc \"\${CMAKE_INSTALL_PREFIX}/etc\")
  endif()
  file(INSTALL DESTINATION \"\${lonc_etc}/lonc\" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES \"${PROJECT_SOURCE_DIR}/conf/lonc.ini\")
")

# Man pages, also copied into the build tree for tests and for
# `systemd-analyze verify` (Documentation=man:lonc(8)). Installed compressed
# with gzip -9n (no name or time stamp: the same bytes every build), as
# Debian policy asks.
set(lonc_man_gz)
foreach(page lonc.8 lonctl.1)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  configure_file(${PROJECT_SOURCE_DIR}/man/${page} ${PROJECT_BINARY_DIR}/man/man${section}/${page} COPYONLY)
  lonc_gzip(${PROJECT_SOURCE_DIR}/man/${page} ${PROJECT_BINARY_DIR}/man-gz/${page}.gz)
  list(APPEND lonc_man_gz ${PROJECT_BINARY_DIR}/man-gz/${page}.gz)
  install(FILES ${PROJECT_BINARY_DIR}/man-gz/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()

# Commented examples. Of /etc only lonc.ini, above: LON-CAPA owns
# access.conf and hosts.tab, and loncron already rotates lonc.log (see
# README).
install(FILES
  ${PROJECT_SOURCE_DIR}/conf/access.conf
  ${PROJECT_SOURCE_DIR}/conf/hosts.tab
  ${PROJECT_SOURCE_DIR}/conf/lonc.ini
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${PROJECT_SOURCE_DIR}/conf/logrotate.d/lonc
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/logrotate.d)

lonc_gzip(${PROJECT_SOURCE_DIR}/packaging/debian/changelog ${PROJECT_BINARY_DIR}/doc-gz/changelog.gz)
add_custom_target(lonc-compressed-docs ALL DEPENDS ${lonc_man_gz} ${PROJECT_BINARY_DIR}/doc-gz/changelog.gz)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# What differs between the packages: packaging/cpack-generator.cmake puts
# the generator cpack is running into the environment of the installation.
# The .deb: the DEP-5 copyright file (pointing to Debian's copy of the GPL)
# and the changelog (a native package: changelog.gz), as Debian policy
# names them, and the lintian overrides. The RPM: the licence text where
# RHEL-family systems keep it (its changelog is in the package header).
# cmake --install: the licence text with the README.
install(CODE "
  set(lonc_share \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATAROOTDIR}\")
  set(lonc_perms PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  if(\"\$ENV{LONC_CPACK_GENERATOR}\" STREQUAL \"DEB\")
    file(INSTALL DESTINATION \"\${lonc_share}/doc/lonc\" TYPE FILE \${lonc_perms} FILES
         \"${PROJECT_SOURCE_DIR}/packaging/debian/copyright\"
         \"${PROJECT_BINARY_DIR}/doc-gz/changelog.gz\")
    file(INSTALL DESTINATION \"\${lonc_share}/lintian/overrides\" TYPE FILE \${lonc_perms}
         FILES \"${PROJECT_SOURCE_DIR}/packaging/debian/lintian-overrides\" RENAME lonc)
  elseif(\"\$ENV{LONC_CPACK_GENERATOR}\" STREQUAL \"RPM\")
    file(INSTALL DESTINATION \"\${lonc_share}/licenses/lonc\" TYPE FILE \${lonc_perms}
         FILES \"${PROJECT_SOURCE_DIR}/LICENSE\")
  else()
    file(INSTALL DESTINATION \"\${lonc_share}/doc/lonc\" TYPE FILE \${lonc_perms}
         FILES \"${PROJECT_SOURCE_DIR}/LICENSE\")
  endif()
")

# ------------------------------------------------------ Debian and RPM packages
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
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/packaging/cpack-generator.cmake)

# The maintainer scripts, copied with the permissions the packages need.
# Both packages follow one rule: lonc runs under systemd or from loncron,
# never both, so the scripts never enable or start it; they restart on
# upgrade, and stop on removal, only a lonc that systemd is running.
function(lonc_package_file src dest mode)
  if(mode STREQUAL "755")
    set(perms OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  else()
    set(perms OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/packaging/${src} ${PROJECT_BINARY_DIR}/packaging/${dest}
    COPYONLY FILE_PERMISSIONS ${perms})
endfunction()

# Debian (cpack -G DEB). Version without a Debian revision: a native
# package, the packaging being part of the project.
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
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA)
foreach(script postinst prerm postrm)
  lonc_package_file(debian/${script} deb/${script} 755)
  list(APPEND CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/packaging/deb/${script})
endforeach()
file(WRITE ${PROJECT_BINARY_DIR}/packaging/deb/conffiles "/etc/lonc/lonc.ini\n")
list(APPEND CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/packaging/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# RPM (cpack -G RPM) for RHEL-family systems. Dependencies come from rpm's
# automatic ones (the sonames the binaries link); the scriptlets are plain
# sh, as the systemd RPM macros may be missing where the package is built.
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_RELEASE 1)
set(CPACK_RPM_PACKAGE_LICENSE "GPL-2.0-or-later")
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
set(CPACK_RPM_PACKAGE_URL "https://loncapa.org/")
set(CPACK_RPM_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_RPM_SPEC_MORE_DEFINE "%define packager ${CPACK_PACKAGE_CONTACT}")
set(CPACK_RPM_PACKAGE_REQUIRES_PRE "shadow-utils")
set(CPACK_RPM_PACKAGE_SUGGESTS "logrotate")
set(CPACK_RPM_USER_FILELIST "%config(noreplace) /etc/lonc/lonc.ini" "%license /usr/share/licenses/lonc/LICENSE")
# Directories other packages own.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
  /usr/sbin /usr/lib/systemd /usr/lib/systemd/system /usr/lib/tmpfiles.d /usr/share/licenses
  /usr/share/man /usr/share/man/man1 /usr/share/man/man8)
foreach(script pre post preun postun posttrans)
  lonc_package_file(rpm/${script} rpm/${script} 644)
endforeach()
set(CPACK_RPM_PRE_INSTALL_SCRIPT_FILE ${PROJECT_BINARY_DIR}/packaging/rpm/pre)
set(CPACK_RPM_POST_INSTALL_SCRIPT_FILE ${PROJECT_BINARY_DIR}/packaging/rpm/post)
set(CPACK_RPM_PRE_UNINSTALL_SCRIPT_FILE ${PROJECT_BINARY_DIR}/packaging/rpm/preun)
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE ${PROJECT_BINARY_DIR}/packaging/rpm/postun)
set(CPACK_RPM_POST_TRANS_SCRIPT_FILE ${PROJECT_BINARY_DIR}/packaging/rpm/posttrans)
set(CPACK_RPM_CHANGELOG_FILE ${PROJECT_SOURCE_DIR}/packaging/rpm/changelog)
include(CPack)
