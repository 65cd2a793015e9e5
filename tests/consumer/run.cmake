# Installs the diampool build tree into a scratch prefix, then configures, builds and runs the
# consumer project against it. Variables: BUILD_DIR, SOURCE_DIR, WORK_DIR, GENERATOR, CXX.
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
                        "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" "-DCMAKE_CXX_COMPILER=${CXX}"
                        "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}"
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed: ${rc}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
execute_process(COMMAND "${WORK_DIR}/build/consumer" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message("${out}")
if(rc)
  message(FATAL_ERROR "the consumer failed: ${rc}")
endif()
if(NOT out MATCHES "DWR Device-Watchdog-Request" OR NOT out MATCHES "answer of [0-9]+ bytes")
  message(FATAL_ERROR "unexpected consumer output")
endif()
# The command-line tool is installed too, and runs.
if(EXISTS "${WORK_DIR}/prefix/bin/diampool")
  execute_process(COMMAND "${WORK_DIR}/prefix/bin/diampool" --version RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out)
  if(rc OR NOT out MATCHES "diampool [0-9]")
    message(FATAL_ERROR "the installed diampool --version failed: ${rc} ${out}")
  endif()
endif()
