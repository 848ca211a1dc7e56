#include "capture/bpf_filter.h"

#include <gtest/gtest.h>

#include "net/test_packets.h"

namespace custos::capture {
namespace {

TEST(BpfFilter, MatchesWhatTcpdumpWould) {
  auto tcp = BpfFilter::Compile("tcp port 80");
  ASSERT_TRUE(tcp) << tcp.error().message;
  auto web = net::testing::BuildFrame({});
  auto other = net::testing::BuildFrame({.dst_port = 443});
  auto dns = net::testing::BuildFrame({.protocol = 17, .dst_port = 80});
  EXPECT_TRUE(tcp->Matches(web, static_cast<std::uint32_t>(web.size())));
  EXPECT_FALSE(tcp->Matches(other, static_cast<std::uint32_t>(other.size())));
  EXPECT_FALSE(tcp->Matches(dns, static_cast<std::uint32_t>(dns.size())));
  auto moved = std::move(*tcp);
  EXPECT_TRUE(moved.Matches(web, static_cast<std::uint32_t>(web.size())));
}

TEST(BpfFilter, ABadExpressionIsNamed) {
  auto bad = BpfFilter::Compile("tcp prot 80");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("capture filter \"tcp prot 80\""), std::string::npos);
}

}  // namespace
}  // namespace custos::capture
