#include "crypto/key_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "common/files.h"
#include "crypto/test_authority.h"

namespace custos::crypto {
namespace {

using testing::Must;
using testing::TempDir;

mode_t ModeOf(const std::filesystem::path& path) {
  struct stat status {};
  EXPECT_EQ(::lstat(path.c_str(), &status), 0);
  return status.st_mode & 07777;
}

// Restores the umask when the test ends.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(previous_); }

 private:
  mode_t previous_;
};

TEST(KeyFile, WritesMode0600AndReadsBack) {
  TempDir dir;
  ScopedUmask permissive(0);
  auto path = dir.path() / "sensor.key";
  KeyPair key = Must(KeyPair::Generate());
  Must(WritePrivateKeyFile(path, key));
  EXPECT_EQ(ModeOf(path), 0600u);
  KeyPair read = Must(ReadPrivateKeyFile(path));
  EXPECT_TRUE(read.SamePublicKey(key.get()));
  // Nothing but the key is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(KeyFile, ReplacesAnExistingKey) {
  TempDir dir;
  auto path = dir.path() / "sensor.key";
  KeyPair first = Must(KeyPair::Generate());
  KeyPair second = Must(KeyPair::Generate());
  Must(WritePrivateKeyFile(path, first));
  Must(WritePrivateKeyFile(path, second));
  EXPECT_TRUE(Must(ReadPrivateKeyFile(path)).SamePublicKey(second.get()));
}

TEST(KeyFile, RefusesGroupOrWorldReadableKey) {
  TempDir dir;
  auto path = dir.path() / "sensor.key";
  Must(WritePrivateKeyFile(path, Must(KeyPair::Generate())));
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto refused = ReadPrivateKeyFile(path);
    ASSERT_FALSE(refused.ok()) << std::oct << mode;
    EXPECT_NE(refused.error().message.find("lets group or others access it"), std::string::npos)
        << refused.error().message;
  }
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  EXPECT_NE(ReadPrivateKeyFile(path).error().message.find("mode 0644"), std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(ReadPrivateKeyFile(path).ok());
}

TEST(KeyFile, RefusesSymlinksAndNonKeys) {
  TempDir dir;
  auto real = dir.path() / "real.key";
  Must(WritePrivateKeyFile(real, Must(KeyPair::Generate())));
  auto link = dir.path() / "link.key";
  std::filesystem::create_symlink(real, link);
  auto refused = ReadPrivateKeyFile(link);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("symlink"), std::string::npos);

  auto garbage = dir.path() / "garbage.key";
  Must(WriteFileAtomic(garbage, "not a key\n", 0600));
  auto unparsable = ReadPrivateKeyFile(garbage);
  ASSERT_FALSE(unparsable.ok());
  EXPECT_NE(unparsable.error().message.find(garbage.string()), std::string::npos);

  EXPECT_FALSE(ReadPrivateKeyFile(dir.path() / "missing.key").ok());
  EXPECT_FALSE(ReadPrivateKeyFile(dir.path()).ok());
}

TEST(KeyFile, WritingOverASymlinkReplacesTheLinkNotItsTarget) {
  TempDir dir;
  auto victim = dir.path() / "victim";
  Must(WriteFileAtomic(victim, "keep me\n", 0644));
  auto path = dir.path() / "sensor.key";
  std::filesystem::create_symlink(victim, path);
  Must(WritePrivateKeyFile(path, Must(KeyPair::Generate())));
  EXPECT_FALSE(std::filesystem::is_symlink(path));
  EXPECT_EQ(Must(ReadFile(victim)), "keep me\n");
  EXPECT_TRUE(ReadPrivateKeyFile(path).ok());
}

}  // namespace
}  // namespace custos::crypto
