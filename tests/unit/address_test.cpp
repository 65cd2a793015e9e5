#include "diampool/address.hpp"

#include <gtest/gtest.h>

namespace diampool {
namespace {

TEST(split_address, accepts_host_port_ipv6_and_names) {
  std::string h;
  std::string p;
  EXPECT_FALSE(split_address("127.0.0.1:3868", h, p));
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(p, "3868");
  EXPECT_FALSE(split_address("[::1]:3868", h, p));
  EXPECT_EQ(h, "::1");
  EXPECT_FALSE(split_address("[2001:db8::7]:1", h, p));
  EXPECT_EQ(h, "2001:db8::7");
  EXPECT_EQ(p, "1");
  EXPECT_FALSE(split_address("peer.example.net:65535", h, p));
  EXPECT_EQ(h, "peer.example.net");
  EXPECT_EQ(p, "65535");
}

TEST(split_address, rejects_malformed_forms_without_touching_the_outputs) {
  for (const char* bad :
       {"", "host", "host:", ":3868", "[::1", "[::1]", "[::1]3868", "::1:3868", "[]:3868",
        "127.0.0.1:70000", "127.0.0.1:65536", "127.0.0.1:0", "127.0.0.1:x", "127.0.0.1:38 68",
        "127.0.0.1:-1", "127.0.0.1:+1", "[127.0.0.1]:3868", "127.0.0.1:003868"}) {
    std::string h = "unchanged";
    std::string p = "unchanged";
    EXPECT_EQ(split_address(bad, h, p), std::errc::invalid_argument) << bad;
    EXPECT_EQ(h, "unchanged") << bad;
    EXPECT_EQ(p, "unchanged") << bad;
  }
}

TEST(split_address, port_zero_only_when_asked_for_listening) {
  std::string h;
  std::string p;
  EXPECT_EQ(split_address("127.0.0.1:0", h, p), std::errc::invalid_argument);
  EXPECT_FALSE(split_address("127.0.0.1:0", h, p, /*allow_port_zero=*/true));
  EXPECT_EQ(p, "0");
}

}  // namespace
}  // namespace diampool
