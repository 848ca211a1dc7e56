#include "bus/frame.h"

#include <gtest/gtest.h>

namespace custos::bus {
namespace {

TEST(Frame, RoundTripsEveryField) {
  Frame frame{FrameType::kFileSend,       42, 7, "first", "rules.txt", {"ids", "dns"},
              std::string("pay\0load", 8)};
  std::string wire;
  EncodeFrame(frame, wire);
  Frame decoded;
  auto result = DecodeFrame(wire, kDefaultMaxFrame, decoded);
  ASSERT_EQ(result.status, DecodeStatus::kFrame) << result.error;
  EXPECT_EQ(result.consumed, wire.size());
  EXPECT_EQ(decoded.type, FrameType::kFileSend);
  EXPECT_EQ(decoded.request_id, 42u);
  EXPECT_EQ(decoded.code, 7);
  EXPECT_EQ(decoded.first, "first");
  EXPECT_EQ(decoded.second, "rules.txt");
  EXPECT_EQ(decoded.list, (std::vector<std::string>{"ids", "dns"}));
  EXPECT_EQ(decoded.payload, std::string("pay\0load", 8));
}

TEST(Frame, EncodeEventMatchesEncodeFrame) {
  std::string fast, slow;
  EncodeEvent("dns", "pdns", "{}", fast);
  EncodeFrame(Frame{FrameType::kEvent, 0, 0, "dns", "pdns", {}, "{}"}, slow);
  EXPECT_EQ(fast, slow);
}

TEST(Frame, WaitsForTheWholeFrame) {
  std::string wire;
  EncodeFrame(Frame{FrameType::kPublish, 0, 0, "flow", "", {}, "0123456789"}, wire);
  Frame decoded;
  for (std::size_t cut = 0; cut < wire.size(); ++cut) {
    EXPECT_EQ(DecodeFrame(std::string_view(wire).substr(0, cut), kDefaultMaxFrame, decoded).status,
              DecodeStatus::kNeedMore)
        << cut;
  }
}

TEST(Frame, RefusesWhatIsNotAFrame) {
  Frame decoded;
  std::string wire;
  EncodeFrame(Frame{FrameType::kPublish, 0, 0, "flow", "", {}, std::string(100, 'x')}, wire);
  auto oversized = DecodeFrame(wire, 50, decoded);
  EXPECT_EQ(oversized.status, DecodeStatus::kInvalid);
  EXPECT_NE(oversized.error.find("exceeds the limit"), std::string::npos);

  std::string bad_version = wire;
  bad_version[4] = 9;
  EXPECT_NE(DecodeFrame(bad_version, kDefaultMaxFrame, decoded).error.find("version"),
            std::string::npos);
  std::string bad_type = wire;
  bad_type[5] = 99;
  EXPECT_NE(DecodeFrame(bad_type, kDefaultMaxFrame, decoded).error.find("unknown frame type"),
            std::string::npos);
  std::string reserved = wire;
  reserved[7] = 1;
  EXPECT_EQ(DecodeFrame(reserved, kDefaultMaxFrame, decoded).status, DecodeStatus::kInvalid);
  // A body whose string length points past its end.
  std::string lying = wire;
  lying[kHeaderSize + 6] = 0x7f;
  EXPECT_EQ(DecodeFrame(lying, kDefaultMaxFrame, decoded).status, DecodeStatus::kInvalid);
}

TEST(Names, AreShortAndPlain) {
  EXPECT_TRUE(IsValidName("flow"));
  EXPECT_TRUE(IsValidName("alert.http-1_x"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("Flow"));
  EXPECT_FALSE(IsValidName("a/b"));
  EXPECT_FALSE(IsValidName(std::string(129, 'a')));
  EXPECT_TRUE(IsValidFileName("Rules-1.txt"));
  EXPECT_FALSE(IsValidFileName("../etc/passwd"));
  EXPECT_FALSE(IsValidFileName(".hidden"));
}

}  // namespace
}  // namespace custos::bus
