#include "common/process.h"

#include <gtest/gtest.h>

namespace custos {
namespace {

TEST(RunCommand, CapturesOutputAndExitCode) {
  auto result = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->output, "out\nerr\n");
}

TEST(RunCommand, ReportsDeathBySignal) {
  auto result = RunCommand({"sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_code, 137);
}

TEST(RunChecked, NamesTheCommandThatFailed) {
  auto result = RunChecked({"sh", "-c", "echo broken; exit 1"});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("sh -c echo broken; exit 1"), std::string::npos);
  EXPECT_NE(result.error().message.find("broken"), std::string::npos);
}

TEST(RunCommand, MissingProgramIsAnError) {
  EXPECT_FALSE(RunCommand({"/nonexistent/custos-no-such-program"}).ok());
}

}  // namespace
}  // namespace custos
