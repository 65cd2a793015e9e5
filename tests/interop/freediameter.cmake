# freeDiameter 1.2.1 (Debian packages freediameterd, freediameter-extensions) as an independent
# Diameter implementation: freediameter_raw_test speaks to it with the codec only, over plain
# blocking sockets.
#
# The binary works only inside tests/interop/freediameter/run.sh, which starts freeDiameter in
# a private network namespace (as root) and exports DIAMPOOL_FD_*; so it is registered as ONE
# CTest test that runs the whole binary through run.sh, not with gtest_discover_tests.
# Later interop tests reuse the harness the same way:
#   add_test(NAME x COMMAND bash ${DIAMPOOL_FD_RUN} [--conf-variant NAME] -- $<TARGET_FILE:x>)
set(DIAMPOOL_FD_RUN ${CMAKE_CURRENT_SOURCE_DIR}/freediameter/run.sh)

add_executable(freediameter_raw_test freediameter_test.cpp)
# Codec only: this test must not depend on the connection layer.
target_link_libraries(freediameter_raw_test PRIVATE diampool::codec GTest::gtest
                                                    GTest::gtest_main)
target_compile_options(freediameter_raw_test PRIVATE -Wall -Wextra)
target_compile_definitions(freediameter_raw_test PRIVATE
  DIAMPOOL_SOURCE_DIR="${PROJECT_SOURCE_DIR}" DIAMPOOL_BINARY_DIR="${PROJECT_BINARY_DIR}")

add_test(NAME freediameter_raw
         COMMAND bash ${DIAMPOOL_FD_RUN} -- $<TARGET_FILE:freediameter_raw_test>)
set_tests_properties(freediameter_raw PROPERTIES LABELS interop TIMEOUT 180)

# diampool::connection (transport and peer machine) against freeDiameter: the whole binary in
# one harness run. Its last case sends SIGTERM to freeDiameterd (DIAMPOOL_FD_PID) to get a DPR
# from it, so the cases must run in file order (no --gtest_shuffle).
add_executable(freediameter_connection_test freediameter_connection_test.cpp)
target_link_libraries(freediameter_connection_test PRIVATE diampool::diampool GTest::gtest
                                                           GTest::gtest_main)
target_compile_options(freediameter_connection_test PRIVATE -Wall -Wextra)

# The traffic of this run is captured on lo inside the namespace and decoded by tshark: at least
# 1000 Diameter messages, none malformed (capture.sh).
add_test(NAME freediameter_connection
         COMMAND bash ${DIAMPOOL_FD_RUN} --
                 bash ${CMAKE_CURRENT_SOURCE_DIR}/freediameter/capture.sh 1000
                 $<TARGET_FILE:freediameter_connection_test>)
set_tests_properties(freediameter_connection PROPERTIES LABELS interop TIMEOUT 240)

# diampool::address_client (the pool) against freeDiameter: the whole binary in one harness
# run. No case stops freeDiameter; each uses its own Origin-Host and closes with DPR.
add_executable(freediameter_address_client_test freediameter_address_client_test.cpp)
target_link_libraries(freediameter_address_client_test PRIVATE diampool::diampool GTest::gtest
                                                               GTest::gtest_main)
target_compile_options(freediameter_address_client_test PRIVATE -Wall -Wextra)

# Captured and decoded like freediameter_connection: a run carries ~12,500 Diameter messages
# (three cases of ~4,000 each); at least 10,000, none malformed.
add_test(NAME freediameter_address_client
         COMMAND bash ${DIAMPOOL_FD_RUN} --
                 bash ${CMAKE_CURRENT_SOURCE_DIR}/freediameter/capture.sh 10000
                 $<TARGET_FILE:freediameter_address_client_test>)
set_tests_properties(freediameter_address_client PROPERTIES LABELS interop TIMEOUT 240)

# `diampool send` against freeDiameter: a 3002 answer (exit 3, as text and JSON) and a CEA 3010
# for an Origin-Host outside the allow-list (exit 4).
if(TARGET diampool_cli)
  add_test(NAME freediameter_cli_send
           COMMAND bash ${DIAMPOOL_FD_RUN} --
                   bash ${CMAKE_CURRENT_SOURCE_DIR}/freediameter/cli_send.sh
                   $<TARGET_FILE:diampool_cli>)
  set_tests_properties(freediameter_cli_send PROPERTIES LABELS interop TIMEOUT 120)
endif()
