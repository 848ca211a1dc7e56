#include "storage/encrypted_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <vector>

#include "common/files.h"
#include "common/unique_fd.h"
#include "storage/instrument_storage.h"
#include "storage/scratch_area.h"

namespace custos::storage {
namespace {

namespace fs = std::filesystem;

SecretBytes TestKey(std::uint8_t seed) {
  std::vector<std::uint8_t> bytes(kDataKeySize);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<std::uint8_t>(seed * 31 + i * 7);
  auto key = SecretBytes::Copy(bytes);
  EXPECT_TRUE(key.ok());
  return std::move(*key);
}

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename());
  return names;
}

// errno of opening `path` for reading, 0 when it opens.
int OpenError(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  return fd.valid() ? 0 : errno;
}

std::string RandomBytes(std::size_t size, unsigned seed) {
  std::mt19937 generator(seed);
  std::string bytes(size, '\0');
  for (auto& byte : bytes) byte = static_cast<char>(generator());
  return bytes;
}

void Write(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

Result<KeyIdentifier> PolicyKey(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(dir);
  auto policy = GetEncryptionPolicy(fd.get());
  if (!policy) return policy.error();
  if (!*policy) return Error{dir + " is not encrypted"};
  return (*policy)->key;
}

class EncryptedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (loop devices, mount, fscrypt keys)";
    scratch_ = std::make_unique<ScratchArea>(CurrentTestName());
    ASSERT_TRUE(scratch_->status().ok()) << scratch_->status().error().message;
    options_.source = scratch_->Path("data.img");
    options_.mountpoint = scratch_->Path("data");
    options_.create_image_bytes = std::uint64_t{64} << 20;
    Open(1);
  }
  void TearDown() override {
    store_.reset();
    scratch_.reset();
  }

  void Open(std::uint8_t key_seed) {
    store_.reset();
    auto store = EncryptedStore::Open(options_, TestKey(key_seed));
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
  }

  std::string Unlock(const std::string& instrument) {
    auto path = store_->Unlock(instrument);
    EXPECT_TRUE(path.ok()) << path.error().message;
    return path ? *path : std::string("/nonexistent");
  }

  KeyStatus StatusOf(const std::string& instrument) {
    auto status = store_->InstrumentKeyStatus(instrument);
    EXPECT_TRUE(status.ok()) << status.error().message;
    return status ? *status : KeyStatus::kIncompletelyRemoved;
  }

  // A directory with nested folders, binary files of many sizes, modes,
  // owners, old times, links and a fifo.
  void Populate(const std::string& dir, unsigned seed) {
    ASSERT_EQ(::mkdir((dir + "/logs").c_str(), 0750), 0);
    ASSERT_EQ(::mkdir((dir + "/logs/2024").c_str(), 0700), 0);
    std::mt19937 generator(seed);
    for (int i = 0; i < 40; ++i) {
      std::string path = dir +
                         (i % 3 == 0   ? "/logs/2024/"
                          : i % 3 == 1 ? "/logs/"
                                       : "/") +
                         "file-" + std::to_string(i) + ".bin";
      std::size_t size = i == 0 ? 0 : generator() % (300 << 10);
      Write(path, RandomBytes(size, seed + static_cast<unsigned>(i)));
      ASSERT_EQ(::chmod(path.c_str(), i % 2 ? 0640 : 0600), 0);
      ASSERT_EQ(::chown(path.c_str(), 100000 + static_cast<unsigned>(i), 100000), 0);
    }
    Write(dir + "/big.pcap", RandomBytes((5 << 20) + 3, seed));
    timeval old_times[2] = {{1600000000, 0}, {1600000000, 250000}};
    ASSERT_EQ(::utimes((dir + "/big.pcap").c_str(), old_times), 0);
    ASSERT_EQ(::symlink("big.pcap", (dir + "/latest").c_str()), 0);
    ASSERT_EQ(::mkfifo((dir + "/control").c_str(), 0600), 0);
    ASSERT_EQ(::chown(dir.c_str(), 100000, 100000), 0);
  }

  std::unique_ptr<ScratchArea> scratch_;
  StoreOptions options_;
  std::unique_ptr<EncryptedStore> store_;
};

TEST_F(EncryptedStoreTest, UnlockGivesAnEncryptedInstrumentDirectory) {
  std::string path = Unlock("alpha");
  EXPECT_EQ(path, PersistentDirectory(store_->data_root(), "alpha"));
  EXPECT_TRUE(PolicyKey(path).ok());
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kUnlocked);
  // Unlocking again is harmless and gives the same place.
  EXPECT_EQ(Unlock("alpha"), path);
  // sensord then hands it to the instrument's uid, as without encryption.
  auto prepared = PreparePersistentDirectory(store_->data_root(), "alpha", 123456);
  ASSERT_TRUE(prepared.ok()) << prepared.error().message;
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 123456u);
  EXPECT_EQ(info.st_mode & 07777, 0700u);
  EXPECT_TRUE(PolicyKey(path).ok());
  ASSERT_EQ(::stat((store_->data_root() + "/instruments").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0711u);
}

TEST_F(EncryptedStoreTest, EachInstrumentAndTheSpoolHaveTheirOwnKey) {
  auto alpha = PolicyKey(Unlock("alpha"));
  auto beta = PolicyKey(Unlock("beta"));
  auto spool_path = store_->UnlockSpool();
  ASSERT_TRUE(spool_path.ok()) << spool_path.error().message;
  EXPECT_EQ(*spool_path, store_->data_root() + "/spool");
  auto spool = PolicyKey(*spool_path);
  ASSERT_TRUE(alpha.ok() && beta.ok() && spool.ok());
  EXPECT_NE(*alpha, *beta);
  EXPECT_NE(*alpha, *spool);
  EXPECT_NE(*beta, *spool);
}

TEST_F(EncryptedStoreTest, OnlyBUnlockedLeavesADirectoryUnreadable) {
  std::string alpha = Unlock("alpha");
  std::string beta = Unlock("beta");
  Write(alpha + "/alpha-secret-name.txt", "alpha's data");
  ASSERT_EQ(::mkdir((alpha + "/alpha-subfolder").c_str(), 0700), 0);
  Write(beta + "/beta.txt", "beta's data");
  ASSERT_TRUE(store_->Lock("alpha").ok());
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kLocked);
  EXPECT_EQ(StatusOf("beta"), KeyStatus::kUnlocked);

  // Beta's key opens nothing of alpha's: names come back encoded and the
  // file cannot be opened.
  std::set<std::string> names = Names(alpha);
  ASSERT_EQ(names.size(), 2u);
  EXPECT_FALSE(names.contains("alpha-secret-name.txt"));
  EXPECT_FALSE(names.contains("alpha-subfolder"));
  int regular_files = 0;
  for (const auto& name : names) {
    struct stat info {};
    ASSERT_EQ(::lstat((alpha + "/" + name).c_str(), &info), 0);
    if (!S_ISREG(info.st_mode)) continue;
    ++regular_files;
    EXPECT_EQ(OpenError(alpha + "/" + name), ENOKEY) << name;
  }
  EXPECT_EQ(regular_files, 1);
  EXPECT_EQ(OpenError(alpha + "/alpha-secret-name.txt"), ENOENT);
  // Creating files in a locked directory is refused as well.
  EXPECT_FALSE(std::ofstream(alpha + "/new").good());
  auto beta_text = ReadFile(beta + "/beta.txt");
  ASSERT_TRUE(beta_text.ok());
  EXPECT_EQ(*beta_text, "beta's data");
}

TEST_F(EncryptedStoreTest, LockAllThenUnlockAgain) {
  std::string alpha = Unlock("alpha");
  std::string beta = Unlock("beta");
  Write(alpha + "/a.txt", "alpha's data");
  Write(beta + "/b.txt", "beta's data");
  ASSERT_TRUE(store_->LockAll().ok());
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kLocked);
  EXPECT_EQ(StatusOf("beta"), KeyStatus::kLocked);
  for (const auto& dir : {alpha, beta}) {
    for (const auto& name : Names(dir)) {
      EXPECT_NE(name, "a.txt");
      EXPECT_NE(name, "b.txt");
      EXPECT_EQ(OpenError(dir + "/" + name), ENOKEY);
    }
  }
  EXPECT_EQ(Unlock("alpha"), alpha);
  auto text = ReadFile(alpha + "/a.txt");
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, "alpha's data");
  EXPECT_EQ(StatusOf("beta"), KeyStatus::kLocked);
}

TEST_F(EncryptedStoreTest, LockWithAnOpenFileSaysSoAndFinishesLater) {
  std::string alpha = Unlock("alpha");
  Write(alpha + "/a.txt", "alpha's data");
  {
    UniqueFd held(::open((alpha + "/a.txt").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(held.valid());
    auto locked = store_->Lock("alpha");
    ASSERT_FALSE(locked.ok());
    EXPECT_NE(locked.error().message.find("still open"), std::string::npos);
    EXPECT_EQ(StatusOf("alpha"), KeyStatus::kIncompletelyRemoved);
  }
  EXPECT_TRUE(store_->Lock("alpha").ok());
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kLocked);
}

TEST_F(EncryptedStoreTest, SurvivesReopenWithTheSameKeyAndRefusesAnother) {
  std::string alpha = Unlock("alpha");
  Write(alpha + "/a.txt", "alpha's data");
  ASSERT_TRUE(store_->Close().ok());

  Open(1);
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kLocked);
  Unlock("alpha");
  auto text = ReadFile(alpha + "/a.txt");
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, "alpha's data");

  Open(2);
  auto refused = store_->Unlock("alpha");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("not the expected"), std::string::npos)
      << refused.error().message;
  // The wrong key was not left behind, and new instruments still work.
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kLocked);
  EXPECT_TRUE(store_->Unlock("gamma").ok());
}

TEST_F(EncryptedStoreTest, RefusesAnUnencryptedDirectoryHoldingFiles) {
  std::string legacy = store_->data_root() + "/instruments/legacy";
  ASSERT_TRUE(MakeDirectories(legacy, 0700).ok());
  Write(legacy + "/old.txt", "plain");
  auto refused = store_->Unlock("legacy");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("exists unencrypted"), std::string::npos)
      << refused.error().message;
  // An empty one (a crash between mkdir and the policy) is taken over.
  ASSERT_TRUE(MakeDirectories(store_->data_root() + "/instruments/fresh", 0700).ok());
  EXPECT_TRUE(PolicyKey(Unlock("fresh")).ok());
}

TEST_F(EncryptedStoreTest, RefusesNamesThatAreNotOnePathComponent) {
  for (const std::string name : {"", "../escape", "a/b", ".hidden", ".", ".."}) {
    auto refused = store_->Unlock(name);
    EXPECT_FALSE(refused.ok()) << name;
  }
  EXPECT_FALSE(store_->Unlock(std::string(201, 'a')).ok());
}

TEST_F(EncryptedStoreTest, RotateKeyKeepsEveryFileByteForByte) {
  std::string alpha = Unlock("alpha");
  Populate(alpha, 7);
  auto before = SnapshotTree(alpha);
  ASSERT_EQ(before.size(), 2u + 40u + 3u);
  auto old_key = PolicyKey(alpha);
  ASSERT_TRUE(old_key.ok());

  ASSERT_TRUE(store_->RotateKey("alpha", TestKey(2)).ok());
  auto after = SnapshotTree(alpha);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [path, entry] : before) {
    ASSERT_TRUE(after.contains(path)) << path;
    EXPECT_TRUE(after[path] == entry) << path;
  }
  struct stat info {};
  ASSERT_EQ(::stat(alpha.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 100000u);
  auto new_key = PolicyKey(alpha);
  ASSERT_TRUE(new_key.ok());
  EXPECT_NE(*new_key, *old_key);
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kUnlocked);
  // Nothing is left of the old directory, and its key is gone.
  EXPECT_EQ(Names(store_->data_root() + "/instruments"), std::set<std::string>{"alpha"});
  auto old_status = GetEncryptionKeyStatus(
      UniqueFd(::open(alpha.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)).get(), *old_key);
  ASSERT_TRUE(old_status.ok());
  EXPECT_EQ(*old_status, KeyStatus::kLocked);

  // Only the new data key opens it now.
  ASSERT_TRUE(store_->Close().ok());
  Open(1);
  EXPECT_FALSE(store_->Unlock("alpha").ok());
  Open(2);
  Unlock("alpha");
  auto reopened = SnapshotTree(alpha);
  for (const auto& [path, entry] : before) EXPECT_TRUE(reopened[path] == entry) << path;
}

TEST_F(EncryptedStoreTest, RotateKeyKeepsALockedDirectoryLocked) {
  std::string alpha = Unlock("alpha");
  Write(alpha + "/a.txt", "alpha's data");
  ASSERT_TRUE(store_->Lock("alpha").ok());
  ASSERT_TRUE(store_->RotateKey("alpha", TestKey(2)).ok());
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kLocked);
  // Running it again (as after an interruption) changes nothing.
  ASSERT_TRUE(store_->RotateKey("alpha", TestKey(2)).ok());
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kLocked);
  // A directory that does not exist has nothing to rotate.
  EXPECT_TRUE(store_->RotateKey("never-started", TestKey(2)).ok());
}

TEST_F(EncryptedStoreTest, UnlockRemovesAnInterruptedRotationsLeftover) {
  std::string alpha = Unlock("alpha");
  Write(alpha + "/a.txt", "alpha's data");
  ASSERT_TRUE(store_->Lock("alpha").ok());
  // As after a crash just past the swap: the old directory, encrypted under
  // a key nobody holds any more, to be deleted without it.
  std::string old = Unlock("old");
  ASSERT_TRUE(MakeDirectories(old + "/sub", 0700).ok());
  Write(old + "/sub/old.txt", "old data");
  ASSERT_TRUE(store_->Lock("old").ok());
  std::string leftover = store_->data_root() + "/instruments/.alpha.rekey";
  ASSERT_EQ(::rename(old.c_str(), leftover.c_str()), 0);
  Unlock("alpha");
  EXPECT_FALSE(fs::exists(leftover));
  auto text = ReadFile(alpha + "/a.txt");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "alpha's data");
}

TEST_F(EncryptedStoreTest, RotateDataKeyMovesEverythingToTheNewKey) {
  std::string alpha = Unlock("alpha");
  std::string beta = Unlock("beta");
  auto spool = store_->UnlockSpool();
  ASSERT_TRUE(spool.ok());
  Write(alpha + "/a.txt", "alpha's data");
  Write(beta + "/b.txt", "beta's data");
  Write(*spool + "/spool-1.log", "events");
  ASSERT_TRUE(store_->Lock("beta").ok());

  ASSERT_TRUE(store_->RotateDataKey(TestKey(3)).ok());
  EXPECT_EQ(StatusOf("alpha"), KeyStatus::kUnlocked);
  EXPECT_EQ(StatusOf("beta"), KeyStatus::kLocked);
  // The store now derives from the new key: beta unlocks, and after a
  // reopen only the new key works.
  Unlock("beta");
  auto text = ReadFile(beta + "/b.txt");
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, "beta's data");
  ASSERT_TRUE(store_->Close().ok());
  Open(3);
  Unlock("alpha");
  ASSERT_TRUE(store_->UnlockSpool().ok());
  text = ReadFile(*spool + "/spool-1.log");
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, "events");
}

}  // namespace
}  // namespace custos::storage
