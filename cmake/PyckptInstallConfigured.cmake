# pyckpt_install_configured(TEMPLATE DESTINATION NAME): installs NAME into
# DESTINATION (relative to the prefix) from TEMPLATE, a configure_file
# template (@ONLY). @PYCKPT_INSTALL_PREFIX@ in it becomes the prefix installed
# to, known only at install time: `cmake --install --prefix DIR`, or /usr
# when CPack builds the Debian package (CPACK_SET_DESTDIR, packaging/). The
# other @VARIABLES@ are replaced at configure time.
#
# For files that must name absolute paths of the installed tree: a
# plugstack.conf line, the Lmod modulefile.
function(pyckpt_install_configured template destination name)
  set(PYCKPT_INSTALL_PREFIX "@PYCKPT_INSTALL_PREFIX@")  # kept for the install step
  set(staged "${CMAKE_CURRENT_BINARY_DIR}/${name}.install.in")
  configure_file("${template}" "${staged}" @ONLY)
  install(CODE "
    set(PYCKPT_INSTALL_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
    set(_pyckpt_out \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${destination}/${name}\")
    message(STATUS \"Installing: \${_pyckpt_out}\")
    configure_file(\"${staged}\" \"\${_pyckpt_out}\" @ONLY)")
endfunction()
