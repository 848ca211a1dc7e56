#include "storage/fscrypt.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fscrypt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "common/unique_fd.h"
#include "storage/encrypted_volume.h"
#include "storage/scratch_area.h"

namespace custos::storage {
namespace {

class FscryptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (loop devices, mount, fscrypt keys)";
    scratch_ = std::make_unique<ScratchArea>(CurrentTestName());
    ASSERT_TRUE(scratch_->status().ok()) << scratch_->status().error().message;
    const std::string image = scratch_->Path("data.img");
    ASSERT_TRUE(CreateVolumeImage(image, std::uint64_t{32} << 20).ok());
    auto volume = EncryptedVolume::Open(image, scratch_->Path("mnt"));
    ASSERT_TRUE(volume.ok()) << volume.error().message;
    volume_ = std::make_unique<EncryptedVolume>(std::move(*volume));
    root_ = volume_->mountpoint();
  }
  void TearDown() override {
    volume_.reset();
    scratch_.reset();
  }

  UniqueFd MakeDirectory(const std::string& name) {
    std::string path = root_ + "/" + name;
    EXPECT_EQ(::mkdir(path.c_str(), 0700), 0);
    return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }

  KeyIdentifier AddRandomKey() {
    auto key = SecretBytes::Random(kDirectoryKeySize);
    EXPECT_TRUE(key.ok());
    auto identifier = AddEncryptionKey(volume_->root_fd(), *key);
    EXPECT_TRUE(identifier.ok()) << identifier.error().message;
    return identifier ? *identifier : KeyIdentifier{};
  }

  std::unique_ptr<ScratchArea> scratch_;
  std::unique_ptr<EncryptedVolume> volume_;
  std::string root_;
};

TEST_F(FscryptTest, AddingAKeyNamesItByItsHash) {
  auto key = SecretBytes::Random(kDirectoryKeySize);
  ASSERT_TRUE(key.ok());
  auto first = AddEncryptionKey(volume_->root_fd(), *key);
  auto second = AddEncryptionKey(volume_->root_fd(), *key);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_NE(*first, AddRandomKey());
  EXPECT_EQ(ToHex(*first).size(), 32u);
  auto status = GetEncryptionKeyStatus(volume_->root_fd(), *first);
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(*status, KeyStatus::kUnlocked);
  EXPECT_EQ(KeyStatusName(*status), "unlocked");
}

TEST_F(FscryptTest, SetsAndVerifiesOurPolicy) {
  KeyIdentifier key = AddRandomKey();
  UniqueFd dir = MakeDirectory("secret");
  ASSERT_TRUE(SetEncryptionPolicy(dir.get(), key).ok());
  auto policy = GetEncryptionPolicy(dir.get());
  ASSERT_TRUE(policy.ok() && policy->has_value());
  EXPECT_EQ((*policy)->version, FSCRYPT_POLICY_V2);
  EXPECT_EQ((*policy)->contents_mode, FSCRYPT_MODE_AES_256_XTS);
  EXPECT_EQ((*policy)->filenames_mode, FSCRYPT_MODE_AES_256_CTS);
  EXPECT_EQ((*policy)->flags, FSCRYPT_POLICY_FLAGS_PAD_32);
  EXPECT_EQ((*policy)->key, key);
  EXPECT_TRUE(VerifyEncryptionPolicy(dir.get(), key, "secret").ok());
  // Files made inside inherit it.
  std::ofstream(root_ + "/secret/file") << "x";
  UniqueFd file(::open((root_ + "/secret/file").c_str(), O_RDONLY | O_CLOEXEC));
  auto inherited = GetEncryptionPolicy(file.get());
  ASSERT_TRUE(inherited.ok() && inherited->has_value());
  EXPECT_EQ((*inherited)->key, key);
}

TEST_F(FscryptTest, VerifyRefusesAnotherKeyAndAnUnencryptedDirectory) {
  KeyIdentifier key = AddRandomKey();
  KeyIdentifier other = AddRandomKey();
  UniqueFd dir = MakeDirectory("secret");
  ASSERT_TRUE(SetEncryptionPolicy(dir.get(), key).ok());
  auto wrong = VerifyEncryptionPolicy(dir.get(), other, "secret");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("not the expected " + ToHex(other)), std::string::npos)
      << wrong.error().message;

  UniqueFd plain = MakeDirectory("plain");
  auto policy = GetEncryptionPolicy(plain.get());
  ASSERT_TRUE(policy.ok());
  EXPECT_FALSE(policy->has_value());
  auto unencrypted = VerifyEncryptionPolicy(plain.get(), key, "plain");
  ASSERT_FALSE(unencrypted.ok());
  EXPECT_EQ(unencrypted.error().message, "plain is not encrypted");
  // A second policy on an encrypted directory is refused too.
  auto again = SetEncryptionPolicy(dir.get(), other);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("already encrypted"), std::string::npos);
}

TEST_F(FscryptTest, PolicyNeedsAnEmptyDirectory) {
  KeyIdentifier key = AddRandomKey();
  UniqueFd full = MakeDirectory("full");
  std::ofstream(root_ + "/full/file") << "x";
  auto refused = SetEncryptionPolicy(full.get(), key);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("not empty"), std::string::npos);
}

TEST_F(FscryptTest, RemovingTheKeyLocksAndReportsOpenFiles) {
  KeyIdentifier key = AddRandomKey();
  UniqueFd dir = MakeDirectory("secret");
  ASSERT_TRUE(SetEncryptionPolicy(dir.get(), key).ok());
  std::ofstream(root_ + "/secret/file") << "plaintext";
  UniqueFd open_file(::open((root_ + "/secret/file").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(open_file.valid());

  auto busy = RemoveEncryptionKey(volume_->root_fd(), key);
  ASSERT_TRUE(busy.ok()) << busy.error().message;
  EXPECT_EQ(*busy, KeyRemoval::kFilesBusy);
  auto status = GetEncryptionKeyStatus(volume_->root_fd(), key);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, KeyStatus::kIncompletelyRemoved);

  // The directory is an encrypted inode in use as well.
  open_file.reset();
  dir.reset();
  auto removed = RemoveEncryptionKey(volume_->root_fd(), key);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, KeyRemoval::kRemoved);
  status = GetEncryptionKeyStatus(volume_->root_fd(), key);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, KeyStatus::kLocked);
  EXPECT_EQ(KeyStatusName(*status), "locked");
  // Locked: the name is gone, the file cannot be opened under it.
  EXPECT_FALSE(std::ifstream(root_ + "/secret/file").good());
  // Removing an absent key is not an error.
  auto again = RemoveEncryptionKey(volume_->root_fd(), key);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, KeyRemoval::kRemoved);
}

TEST_F(FscryptTest, RefusesKeysOfImpossibleSizes) {
  auto tiny = SecretBytes::Random(8);
  ASSERT_TRUE(tiny.ok());
  EXPECT_FALSE(AddEncryptionKey(volume_->root_fd(), *tiny).ok());
  auto huge = SecretBytes::Random(65);
  ASSERT_TRUE(huge.ok());
  EXPECT_FALSE(AddEncryptionKey(volume_->root_fd(), *huge).ok());
}

}  // namespace
}  // namespace custos::storage
