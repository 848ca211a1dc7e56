#include "storage/tree_copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "common/unique_fd.h"
#include "storage/scratch_area.h"

namespace custos::storage {
namespace {

namespace fs = std::filesystem;

std::string RandomBytes(std::size_t size, unsigned seed) {
  std::mt19937 generator(seed);
  std::string bytes(size, '\0');
  for (auto& byte : bytes) byte = static_cast<char>(generator());
  return bytes;
}

void Write(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path, std::ios::binary) << content;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

class TreeCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/custos-tree-copy-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    source_ = root_ + "/source";
    target_ = root_ + "/target";
    ASSERT_EQ(::mkdir(source_.c_str(), 0750), 0);
    ASSERT_EQ(::mkdir(target_.c_str(), 0700), 0);
  }
  void TearDown() override { fs::remove_all(root_); }

  Status Copy() {
    UniqueFd source(::open(source_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd target(::open(target_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return CopyTree(source.get(), target.get());
  }

  std::string root_, source_, target_;
};

TEST_F(TreeCopyTest, CopiesEveryKindOfEntryWithItsMetadata) {
  Write(source_ + "/empty", "", 0600);
  Write(source_ + "/small.txt", "hello\n", 0644);
  Write(source_ + "/large.bin", RandomBytes((3 << 20) + 17, 1), 0640);
  ASSERT_EQ(::mkdir((source_ + "/sub").c_str(), 0710), 0);
  ASSERT_EQ(::mkdir((source_ + "/sub/deeper").c_str(), 0700), 0);
  Write(source_ + "/sub/deeper/nested.bin", RandomBytes(4097, 2), 0400);
  Write(source_ + "/setuid", "x", 04755);
  ASSERT_EQ(::symlink("small.txt", (source_ + "/relative-link").c_str()), 0);
  ASSERT_EQ(::symlink("/etc", (source_ + "/outside-link").c_str()), 0);
  ASSERT_EQ(::symlink("/nonexistent/target", (source_ + "/dangling").c_str()), 0);
  ASSERT_EQ(::mkfifo((source_ + "/fifo").c_str(), 0620), 0);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown((source_ + "/small.txt").c_str(), 1234, 5678), 0);
    ASSERT_EQ(::chown((source_ + "/sub").c_str(), 4321, 4321), 0);
    ASSERT_EQ(::lchown((source_ + "/relative-link").c_str(), 999, 998), 0);
    ASSERT_EQ(::chmod((source_ + "/setuid").c_str(), 04755), 0);
  }
  timeval old_times[2] = {{1000000000, 0}, {1000000000, 123456}};
  ASSERT_EQ(::utimes((source_ + "/large.bin").c_str(), old_times), 0);
  ASSERT_EQ(::lutimes((source_ + "/dangling").c_str(), old_times), 0);
  ASSERT_EQ(::utimes((source_ + "/sub").c_str(), old_times), 0);

  auto before = SnapshotTree(source_);
  ASSERT_TRUE(Copy().ok());
  auto after = SnapshotTree(target_);
  ASSERT_EQ(before.size(), 11u);
  EXPECT_EQ(after.size(), before.size());
  for (const auto& [path, entry] : before) {
    ASSERT_TRUE(after.contains(path)) << path;
    EXPECT_TRUE(after[path] == entry) << path;
  }
  // The links were not followed: /etc was not copied.
  EXPECT_TRUE(fs::is_symlink(target_ + "/outside-link"));
  // The target directory took the source's mode.
  struct stat info {};
  ASSERT_EQ(::stat(target_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0750u);
}

TEST_F(TreeCopyTest, FailsOnANonEmptyTargetClash) {
  Write(source_ + "/file", "new", 0600);
  Write(target_ + "/file", "old", 0600);
  auto copied = Copy();
  ASSERT_FALSE(copied.ok());
  EXPECT_NE(copied.error().message.find("file"), std::string::npos);
}

TEST_F(TreeCopyTest, RefusesAbsurdNesting) {
  std::string path = source_;
  for (int i = 0; i < 200; ++i) {
    path += "/d";
    ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  }
  auto copied = Copy();
  ASSERT_FALSE(copied.ok());
  EXPECT_NE(copied.error().message.find("nested deeper"), std::string::npos);
}

}  // namespace
}  // namespace custos::storage
