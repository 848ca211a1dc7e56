#include "fleet/fleet_layout.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common/files.h"
#include "crypto/test_authority.h"

namespace custos::fleet {
namespace {

namespace fs = std::filesystem;

FleetInitOptions InitOptions(const fs::path& dir) {
  FleetInitOptions init;
  init.dir = dir;
  init.addresses = {"fleet.test"};
  return init;
}

TEST(FleetInitTest, MakesMissingParentsAndAPrivateFolder) {
  crypto::testing::TempDir temp;
  const fs::path dir = temp.path() / "var" / "lib" / "custos" / "fleet";
  auto token = InitFleet(InitOptions(dir));
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_FALSE(token->empty());
  struct stat info {};
  ASSERT_EQ(::stat(dir.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  EXPECT_TRUE(fs::exists(FleetPaths(dir).root_certificate));
}

TEST(FleetInitTest, RefusesAFolderThatExistsAndLeavesItAlone) {
  crypto::testing::TempDir temp;
  const fs::path dir = temp.path() / "fleet";
  fs::create_directory(dir);
  std::ofstream(dir / "kept") << "mine";
  auto token = InitFleet(InitOptions(dir));
  ASSERT_FALSE(token.ok());
  EXPECT_NE(token.error().message.find("already exists"), std::string::npos)
      << token.error().message;
  EXPECT_EQ(ReadFile(dir / "kept").value_or(""), "mine");
}

}  // namespace
}  // namespace custos::fleet
