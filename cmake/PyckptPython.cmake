# Picks the Python 3.11 interpreter pyckpt builds its extension for.
#
# The interpreter must import numpy and mpi4py: on Debian those live in the
# system interpreter /usr/bin/python3, while the first python3 on PATH may be
# another 3.11 (pyenv, a venv) without them. -DPython3_EXECUTABLE=... overrides
# the search; the chosen interpreter is still checked and printed.

set(_pyckpt_required_modules "numpy, mpi4py")

function(_pyckpt_python_ok exe result)
  execute_process(
    COMMAND "${exe}" -c "import sys, ${_pyckpt_required_modules}; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)"
    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(rc EQUAL 0)
    set(${result} TRUE PARENT_SCOPE)
  else()
    set(${result} FALSE PARENT_SCOPE)
  endif()
endfunction()

if(Python3_EXECUTABLE)
  _pyckpt_python_ok("${Python3_EXECUTABLE}" _ok)
  if(NOT _ok)
    message(FATAL_ERROR "pyckpt: Python3_EXECUTABLE=${Python3_EXECUTABLE} is not a Python 3.11 that imports ${_pyckpt_required_modules}")
  endif()
else()
  set(_candidates /usr/bin/python3 /usr/bin/python3.11)
  find_program(_path_python3 NAMES python3.11 python3 NO_CACHE)
  if(_path_python3)
    list(APPEND _candidates "${_path_python3}")
  endif()
  foreach(_exe IN LISTS _candidates)
    if(EXISTS "${_exe}")
      _pyckpt_python_ok("${_exe}" _ok)
      if(_ok)
        set(Python3_EXECUTABLE "${_exe}" CACHE FILEPATH "Python interpreter pyckpt is built for")
        break()
      endif()
    endif()
  endforeach()
  if(NOT Python3_EXECUTABLE)
    message(FATAL_ERROR "pyckpt: no Python 3.11 interpreter that imports ${_pyckpt_required_modules} (tried ${_candidates}); run tools/install-deps.sh or pass -DPython3_EXECUTABLE")
  endif()
endif()

find_package(Python3 3.11 EXACT REQUIRED COMPONENTS Interpreter Development.Module NumPy)
message(STATUS "pyckpt: Python interpreter ${Python3_EXECUTABLE} (Python ${Python3_VERSION}, NumPy ${Python3_NumPy_VERSION}, imports ${_pyckpt_required_modules})")

# Where `cmake --install` puts the Python package, relative to the prefix.
# For Debian's interpreter, lib/python3.X/dist-packages: on its sys.path
# under /usr (the Debian package) and /usr/local alike. Elsewhere the
# interpreter's site-packages layout. Under any other prefix, the installed
# `pyckpt` command adds the directory to sys.path itself, and the Lmod
# modulefile puts it on PYTHONPATH.
execute_process(
  COMMAND "${Python3_EXECUTABLE}" -c "import sysconfig; print('dist-packages' if 'deb_system' in sysconfig.get_scheme_names() else 'site-packages')"
  OUTPUT_VARIABLE _pyckpt_site_name OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
set(PYCKPT_PYTHON_INSTALL_DIR "lib/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/${_pyckpt_site_name}"
    CACHE STRING "Install directory of the pyckpt Python package, relative to the prefix")
