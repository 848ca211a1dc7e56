#include "storage/encrypted_volume.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "common/process.h"
#include "storage/scratch_area.h"

namespace custos::storage {
namespace {

constexpr std::uint64_t kImageSize = std::uint64_t{64} << 20;

class EncryptedVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (loop devices, mount)";
    scratch_ = std::make_unique<ScratchArea>(CurrentTestName());
    ASSERT_TRUE(scratch_->status().ok()) << scratch_->status().error().message;
    image_ = scratch_->Path("data.img");
    mountpoint_ = scratch_->Path("mnt");
  }
  void TearDown() override { scratch_.reset(); }

  std::size_t AttachedLoops() {
    auto loops = LoopDevicesOf(image_);
    EXPECT_TRUE(loops.ok()) << loops.error().message;
    return loops ? loops->size() : 0;
  }

  std::unique_ptr<ScratchArea> scratch_;
  std::string image_;
  std::string mountpoint_;
};

TEST_F(EncryptedVolumeTest, CreatesASparseImageOnce) {
  ASSERT_TRUE(CreateVolumeImage(image_, kImageSize).ok());
  struct stat info {};
  ASSERT_EQ(::stat(image_.c_str(), &info), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(info.st_size), kImageSize);
  EXPECT_LT(static_cast<std::uint64_t>(info.st_blocks) * 512, kImageSize / 2);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  auto again = CreateVolumeImage(image_, kImageSize);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("File exists"), std::string::npos);
  EXPECT_FALSE(CreateVolumeImage(scratch_->Path("tiny.img"), 1 << 20).ok());
}

TEST_F(EncryptedVolumeTest, MountsAndCloseUnmountsAndDetaches) {
  ASSERT_TRUE(CreateVolumeImage(image_, kImageSize).ok());
  auto volume = EncryptedVolume::Open(image_, mountpoint_);
  ASSERT_TRUE(volume.ok()) << volume.error().message;
  EXPECT_TRUE(volume->is_open());
  EXPECT_EQ(volume->device().rfind("/dev/loop", 0), 0u) << volume->device();
  EXPECT_EQ(AttachedLoops(), 1u);
  auto mounted = MountPointsOf(volume->device());
  ASSERT_TRUE(mounted.ok());
  ASSERT_EQ(mounted->size(), 1u);
  EXPECT_EQ(mounted->front(), mountpoint_);
  // Data written through the mount survives a close and a re-open.
  std::ofstream(mountpoint_ + "/hello") << "kept";
  ASSERT_TRUE(volume->Close().ok());
  EXPECT_FALSE(volume->is_open());
  EXPECT_EQ(AttachedLoops(), 0u);
  EXPECT_FALSE(std::ifstream(mountpoint_ + "/hello").good());

  auto again = EncryptedVolume::Open(image_, mountpoint_);
  ASSERT_TRUE(again.ok()) << again.error().message;
  std::string text;
  std::ifstream(mountpoint_ + "/hello") >> text;
  EXPECT_EQ(text, "kept");
}

TEST_F(EncryptedVolumeTest, DestructorCleansUp) {
  ASSERT_TRUE(CreateVolumeImage(image_, kImageSize).ok());
  {
    auto volume = EncryptedVolume::Open(image_, mountpoint_);
    ASSERT_TRUE(volume.ok()) << volume.error().message;
    EXPECT_EQ(AttachedLoops(), 1u);
  }
  EXPECT_EQ(AttachedLoops(), 0u);
}

TEST_F(EncryptedVolumeTest, CleansUpAfterACrashedRun) {
  ASSERT_TRUE(CreateVolumeImage(image_, kImageSize).ok());
  pid_t pid = ::fork();
  if (pid == 0) {
    auto volume = EncryptedVolume::Open(image_, mountpoint_);
    ::_exit(volume.ok() ? 0 : 1);  // no destructor: the mount stays
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(AttachedLoops(), 1u);

  auto volume = EncryptedVolume::Open(image_, mountpoint_);
  ASSERT_TRUE(volume.ok()) << volume.error().message;
  EXPECT_EQ(AttachedLoops(), 1u);
  auto mounted = MountPointsOf(volume->device());
  ASSERT_TRUE(mounted.ok());
  EXPECT_EQ(mounted->size(), 1u);
}

TEST_F(EncryptedVolumeTest, CloseRefusesWhileAFileIsOpenThenSucceeds) {
  ASSERT_TRUE(CreateVolumeImage(image_, kImageSize).ok());
  auto volume = EncryptedVolume::Open(image_, mountpoint_);
  ASSERT_TRUE(volume.ok()) << volume.error().message;
  int fd = ::open((mountpoint_ + "/busy").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  auto closed = volume->Close();
  ASSERT_FALSE(closed.ok());
  EXPECT_NE(closed.error().message.find("still in use"), std::string::npos)
      << closed.error().message;
  EXPECT_EQ(AttachedLoops(), 1u);
  ::close(fd);
  EXPECT_TRUE(volume->Close().ok());
  EXPECT_EQ(AttachedLoops(), 0u);
}

TEST_F(EncryptedVolumeTest, RefusesAnOccupiedMountpointWithoutLeakingALoop) {
  ASSERT_TRUE(CreateVolumeImage(image_, kImageSize).ok());
  ASSERT_EQ(::mkdir(mountpoint_.c_str(), 0700), 0);
  ASSERT_EQ(::mount("tmpfs", mountpoint_.c_str(), "tmpfs", 0, "size=1m"), 0);
  auto volume = EncryptedVolume::Open(image_, mountpoint_);
  ASSERT_FALSE(volume.ok());
  EXPECT_NE(volume.error().message.find("already has another filesystem"), std::string::npos)
      << volume.error().message;
  EXPECT_EQ(AttachedLoops(), 0u);
}

TEST_F(EncryptedVolumeTest, RefusesAFilesystemWithoutTheEncryptFeature) {
  {
    std::ofstream(image_).close();
    ASSERT_EQ(::truncate(image_.c_str(), kImageSize), 0);
  }
  ASSERT_TRUE(RunChecked({"mkfs.ext4", "-q", "-F", "-O", "^encrypt", image_}).ok());
  auto volume = EncryptedVolume::Open(image_, mountpoint_);
  ASSERT_FALSE(volume.ok());
  EXPECT_NE(volume.error().message.find("no 'encrypt' feature"), std::string::npos)
      << volume.error().message;
  EXPECT_EQ(AttachedLoops(), 0u);
}

TEST_F(EncryptedVolumeTest, MissingImageIsAClearError) {
  auto volume = EncryptedVolume::Open(image_, mountpoint_);
  ASSERT_FALSE(volume.ok());
  EXPECT_NE(volume.error().message.find(image_), std::string::npos);
}

}  // namespace
}  // namespace custos::storage
