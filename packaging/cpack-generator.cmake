# CPACK_PROJECT_CONFIG_FILE: cpack reads this once per generator, before it
# runs the installation. The installation (cmake/LoncInstall.cmake) reads
# LONC_CPACK_GENERATOR to add what only one package ships.
set(ENV{LONC_CPACK_GENERATOR} "${CPACK_GENERATOR}")
