# Installation: the binaries, the systemd unit, man pages and examples.
#
#   cmake --install build/release [--prefix /usr]
#
# The Debian and RPM packages install with this too (debian/rules,
# lonc.spec; docs/packaging.md). The unit names the installed binary, so it
# is written at install time from the prefix in force then.
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
# Stripping (install --strip) also drops the compiler's .comment and
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

add_custom_target(lonc-compressed-docs ALL DEPENDS ${lonc_man_gz})
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The licence text with the README. The packages ship it their own way
# (Debian: debian/copyright; RPM: %license) and turn this off.
option(LONC_INSTALL_LICENSE "Install LICENSE into the doc directory" ON)
if(LONC_INSTALL_LICENSE)
  install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR}
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
