# The embedded Diameter peer against a blocking POSIX-socket client on loopback.
if(TARGET diampool_embedded_peer)
  diampool_test(embedded_peer_test LABEL component SOURCES embedded_peer_test.cpp
                LIBS diampool::embedded_peer)
endif()
