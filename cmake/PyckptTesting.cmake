# Helpers to register tests with CTest.
#
# pyckpt_add_mpi_test(NAME <name> NP <n> COMMAND <cmd...> [LABELS ...] [TIMEOUT s])
#   runs <cmd> under mpirun with <n> ranks. As root Open MPI needs
#   --allow-run-as-root, and on a 2-core machine --oversubscribe.

set(PYCKPT_MPIEXEC_FLAGS --oversubscribe --bind-to none)
if("$ENV{USER}" STREQUAL "root" OR "$ENV{HOME}" STREQUAL "/root")
  list(APPEND PYCKPT_MPIEXEC_FLAGS --allow-run-as-root)
endif()
# Open MPI reads these as well; set for every test so that nested mpirun calls
# made by test scripts work as root too.
set(PYCKPT_TEST_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none)

function(pyckpt_add_mpi_test)
  cmake_parse_arguments(T "" "NAME;NP;TIMEOUT" "COMMAND;LABELS" ${ARGN})
  add_test(NAME ${T_NAME}
    COMMAND ${MPIEXEC_EXECUTABLE} ${PYCKPT_MPIEXEC_FLAGS} ${MPIEXEC_NUMPROC_FLAG} ${T_NP} ${T_COMMAND})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES
    TIMEOUT ${T_TIMEOUT} LABELS "mpi;${T_LABELS}" ENVIRONMENT "${PYCKPT_TEST_ENV}"
    PROCESSORS ${T_NP})
endfunction()
