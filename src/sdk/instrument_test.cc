#include "custos/instrument.h"

#include <gtest/gtest.h>

namespace custos {
namespace {

using nlohmann::json;

TEST(ReadSetting, GivesTheFallbackWhenAbsentOrNull) {
  json settings = {{"other", 1}, {"loops", nullptr}};
  EXPECT_EQ(*ReadSetting(settings, "missing", 7L), 7L);
  EXPECT_EQ(*ReadSetting(settings, "loops", 3L), 3L);
  EXPECT_EQ(*ReadSetting(json::object(), "pace", std::string("fast")), "fast");
}

TEST(ReadSetting, GivesValuesOfTheRightType) {
  json settings = {{"loops", 4}, {"pace", "original"}, {"ratio", 0.5}, {"on", true}};
  EXPECT_EQ(*ReadSetting(settings, "loops", 1L), 4L);
  EXPECT_EQ(*ReadSetting(settings, "pace", std::string()), "original");
  EXPECT_DOUBLE_EQ(*ReadSetting(settings, "ratio", 0.0), 0.5);
  EXPECT_DOUBLE_EQ(*ReadSetting(settings, "loops", 0.0), 4.0);  // a whole number is a number
  EXPECT_TRUE(*ReadSetting(settings, "on", false));
}

TEST(ReadSetting, NamesTheSettingAndWhatItMustBe) {
  json settings = {{"loops", "3"}, {"pace", 2}, {"on", "yes"}, {"half", 1.5}};
  auto loops = ReadSetting(settings, "loops", 1L);
  ASSERT_FALSE(loops.ok());
  EXPECT_EQ(loops.error().message, "setting loops must be a whole number, not \"3\"");
  auto pace = ReadSetting(settings, "pace", std::string("fast"));
  ASSERT_FALSE(pace.ok());
  EXPECT_EQ(pace.error().message, "setting pace must be a string, not 2");
  EXPECT_FALSE(ReadSetting(settings, "on", false).ok());
  EXPECT_FALSE(ReadSetting(settings, "half", 0L).ok());
}

TEST(ReadSetting, RefusesNumbersTheTypeCannotHold) {
  json settings = {{"negative", -1}, {"huge", 1ULL << 40}};
  auto negative = ReadSetting(settings, "negative", 0U);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().message, "setting negative must be zero or more, not -1");
  EXPECT_FALSE(ReadSetting(settings, "huge", 0U).ok());
  EXPECT_FALSE(ReadSetting(settings, "huge", std::int32_t{0}).ok());
  EXPECT_EQ(*ReadSetting(settings, "huge", std::uint64_t{0}), 1ULL << 40);
  EXPECT_EQ(*ReadSetting(settings, "negative", 0L), -1L);
}

TEST(InstrumentContext, RefusesSettingsThatAreNotAnObject) {
  auto context = InstrumentContext::FromDocument(R"({"instrument":"x","settings":"loops=3"})");
  ASSERT_FALSE(context.ok());
  EXPECT_EQ(context.error().message, "settings must be a JSON object");
  EXPECT_TRUE(InstrumentContext::FromDocument(R"({"instrument":"x"})").ok());
}

}  // namespace
}  // namespace custos
