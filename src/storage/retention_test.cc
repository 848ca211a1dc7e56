#include "storage/retention.h"

#include <gtest/gtest.h>
#include <sys/time.h>

#include <filesystem>
#include <fstream>

namespace custos {
namespace {
namespace fs = std::filesystem;

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/custos-retention-XXXXXX";
    root_ = ::mkdtemp(pattern);
  }
  void TearDown() override { fs::remove_all(root_); }
  void Make(const std::string& relative, std::chrono::seconds age) {
    std::string path = root_ + "/" + relative;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << "x";
    Age(path, age);
  }
  void Age(const std::string& path, std::chrono::seconds age) {
    timeval times[2];
    ::gettimeofday(&times[0], nullptr);
    times[0].tv_sec -= age.count();
    times[1] = times[0];
    ASSERT_EQ(::lutimes(path.c_str(), times), 0);
  }
  std::string root_;
};

TEST_F(RetentionTest, DeletesOnlyFilesPastTheCutoff) {
  Make("old", std::chrono::hours(3));
  Make("new", std::chrono::minutes(1));
  Make("sub/old", std::chrono::hours(3));
  Make("sub/new", std::chrono::minutes(1));
  auto report = SweepExpired(root_, std::chrono::system_clock::now() - std::chrono::hours(1));
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->deleted, 2u);
  EXPECT_EQ(report->kept, 2u);
  EXPECT_FALSE(fs::exists(root_ + "/old"));
  EXPECT_FALSE(fs::exists(root_ + "/sub/old"));
  EXPECT_TRUE(fs::exists(root_ + "/new"));
  EXPECT_TRUE(fs::exists(root_ + "/sub/new"));
}

TEST_F(RetentionTest, RemovesOldEmptyDirectoriesButNotTheRoot) {
  Make("a/b/c/old", std::chrono::hours(3));
  for (const char* dir : {"a/b/c", "a/b", "a"}) Age(root_ + "/" + dir, std::chrono::hours(3));
  Age(root_, std::chrono::hours(3));
  auto report = SweepExpired(root_, std::chrono::system_clock::now() - std::chrono::hours(1));
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(fs::exists(root_ + "/a"));
  EXPECT_TRUE(fs::exists(root_));
}

TEST_F(RetentionTest, NeverFollowsSymlinks) {
  std::string outside = root_ + "-outside";
  fs::create_directories(outside);
  std::ofstream(outside + "/precious") << "keep";
  Age(outside + "/precious", std::chrono::hours(10));
  fs::create_directories(root_ + "/data");
  fs::create_directory_symlink(outside, root_ + "/data/dirlink");
  Age(root_ + "/data/dirlink", std::chrono::hours(10));
  auto report = SweepExpired(root_, std::chrono::system_clock::now() - std::chrono::hours(1));
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(fs::exists(outside + "/precious"));
  EXPECT_FALSE(fs::is_symlink(root_ + "/data/dirlink"));
  fs::remove_all(outside);
}

TEST_F(RetentionTest, MissingRootIsAnError) {
  EXPECT_FALSE(SweepExpired(root_ + "/nope", std::chrono::system_clock::now()).ok());
}

}  // namespace
}  // namespace custos
