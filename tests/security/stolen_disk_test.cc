// A stolen sensor's disk: with the store locked and unmounted, the raw bytes
// of the data volume must hold no instrument's file contents, no file name
// and no key, and mounting it without the data key must show encoded names
// and refuse to read files. A control image written the same way without
// encryption shows that the search does find plaintext.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "storage/encrypted_store.h"
#include "storage/encrypted_volume.h"
#include "storage/fscrypt.h"
#include "storage/key_material.h"
#include "storage/scratch_area.h"

namespace custos::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kImageSize = std::uint64_t{96} << 20;

std::string RandomHex(std::size_t bytes) {
  std::vector<unsigned char> random(bytes);
  EXPECT_EQ(RAND_bytes(random.data(), static_cast<int>(bytes)), 1);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : random) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0xf];
  }
  return hex;
}

std::string_view View(const SecretBytes& secret) {
  return {reinterpret_cast<const char*>(secret.data()), secret.size()};
}

std::string Hex(const SecretBytes& secret) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (std::uint8_t byte : secret.bytes()) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0xf];
  }
  return hex;
}

// Markers fresh for each run, so nothing but this run's writes can match.
struct Markers {
  std::string content = "CUSTOS-SECRET-CONTENT-" + RandomHex(12);
  std::vector<std::string> names;  // file and folder names, per instrument
};

// One instrument's worth of files: a small file, one of exactly a block,
// a large one, and a folder, all named and filled with markers.
void WriteMarkedFiles(const std::string& dir, const std::string& instrument, Markers& markers) {
  const std::string file_name = "marker-file-" + instrument + "-" + RandomHex(8) + ".log";
  const std::string block_name = "marker-block-" + instrument + "-" + RandomHex(8) + ".bin";
  const std::string big_name = "marker-big-" + instrument + "-" + RandomHex(8) + ".pcap";
  const std::string folder_name = "marker-folder-" + instrument + "-" + RandomHex(8);
  markers.names.insert(markers.names.end(), {file_name, block_name, big_name, folder_name});

  std::ofstream(dir + "/" + file_name) << markers.content << "\n";
  std::string block;
  while (block.size() < 4096) block += markers.content;
  block.resize(4096);
  std::ofstream(dir + "/" + block_name, std::ios::binary) << block;
  std::ofstream big(dir + "/" + big_name, std::ios::binary);
  for (int i = 0; i < 256; ++i) big << block;
  big.close();
  ASSERT_TRUE(big.good());
  ASSERT_EQ(::mkdir((dir + "/" + folder_name).c_str(), 0700), 0);
  std::ofstream(dir + "/" + folder_name + "/" + file_name) << markers.content;
  ::sync();
}

// Checks that each needle is (or is not) in the raw image.
void ExpectInImage(const std::string& image, const std::vector<std::string>& needles, bool expected,
                   const std::string& what) {
  for (const auto& needle : needles) {
    auto found = FileContains(image, needle);
    ASSERT_TRUE(found.ok()) << found.error().message;
    EXPECT_EQ(*found, expected) << what << " '" << needle << "' in " << image;
  }
}

class StolenDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (loop devices, mount, fscrypt keys)";
    scratch_ = std::make_unique<ScratchArea>(CurrentTestName());
    ASSERT_TRUE(scratch_->status().ok()) << scratch_->status().error().message;
    image_ = scratch_->Path("sensor.img");
    mountpoint_ = scratch_->Path("data");
  }
  void TearDown() override { scratch_.reset(); }

  StoreOptions Options() const { return {image_, mountpoint_, kImageSize}; }

  std::unique_ptr<ScratchArea> scratch_;
  std::string image_;
  std::string mountpoint_;
};

TEST_F(StolenDiskTest, LockedImageRevealsNoContentNoNamesAndNoKeys) {
  auto data_key = SecretBytes::Random(kDataKeySize);
  ASSERT_TRUE(data_key.ok());
  auto key_copy = SecretBytes::Copy(data_key->bytes());
  ASSERT_TRUE(key_copy.ok());
  Markers markers;
  {
    auto store = EncryptedStore::Open(Options(), std::move(*data_key));
    ASSERT_TRUE(store.ok()) << store.error().message;
    for (const std::string instrument : {"alpha", "beta"}) {
      auto dir = (*store)->Unlock(instrument);
      ASSERT_TRUE(dir.ok()) << dir.error().message;
      WriteMarkedFiles(*dir, instrument, markers);
    }
    auto spool = (*store)->UnlockSpool();
    ASSERT_TRUE(spool.ok()) << spool.error().message;
    WriteMarkedFiles(*spool, "spool", markers);
    ASSERT_TRUE((*store)->LockAll().ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto loops = LoopDevicesOf(image_);
  ASSERT_TRUE(loops.ok());
  ASSERT_TRUE(loops->empty()) << "the image is still attached";

  ExpectInImage(image_, {markers.content}, false, "file content");
  ExpectInImage(image_, markers.names, false, "file name");
  auto alpha_key = DeriveInstrumentKey(*key_copy, "alpha");
  auto spool_key = DeriveSpoolKey(*key_copy);
  ASSERT_TRUE(alpha_key.ok() && spool_key.ok());
  ExpectInImage(image_,
                {std::string(View(*key_copy)), Hex(*key_copy), std::string(View(*alpha_key)),
                 std::string(View(*spool_key))},
                false, "key");

  // The thief mounts the image, but has no key to add.
  auto volume = EncryptedVolume::Open(image_, mountpoint_);
  ASSERT_TRUE(volume.ok()) << volume.error().message;
  for (const std::string dir : {"instruments/alpha", "instruments/beta", "spool"}) {
    const std::string path = mountpoint_ + "/" + dir;
    int files = 0;
    int entries = 0;
    for (const auto& entry : fs::directory_iterator(path)) {
      ++entries;
      const std::string name = entry.path().filename();
      for (const auto& marker : markers.names) EXPECT_EQ(name.find(marker), std::string::npos);
      EXPECT_EQ(name.find("marker"), std::string::npos) << name;
      if (!entry.is_regular_file()) continue;
      ++files;
      UniqueFd fd(::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC));
      const int error = fd.valid() ? 0 : errno;
      EXPECT_EQ(error, ENOKEY) << "opening " << entry.path() << " without the key";
    }
    EXPECT_EQ(entries, 4) << path;
    EXPECT_EQ(files, 3) << path;
  }
  ASSERT_TRUE(volume->Close().ok());
}

// The control: the same files, unencrypted, on the same kind of image, are
// found by the same search.
TEST_F(StolenDiskTest, ControlPlaintextIsFoundInAnUnencryptedDirectory) {
  Markers markers;
  ASSERT_TRUE(CreateVolumeImage(image_, kImageSize).ok());
  {
    auto volume = EncryptedVolume::Open(image_, mountpoint_);
    ASSERT_TRUE(volume.ok()) << volume.error().message;
    const std::string plain = mountpoint_ + "/plain";
    ASSERT_EQ(::mkdir(plain.c_str(), 0700), 0);
    WriteMarkedFiles(plain, "alpha", markers);
    ASSERT_TRUE(volume->Close().ok());
  }
  ExpectInImage(image_, {markers.content}, true, "file content");
  ExpectInImage(image_, markers.names, true, "file name");
}

TEST_F(StolenDiskTest, DataKeysNeverReachTheDiskAcrossARotation) {
  auto old_key = SecretBytes::Random(kDataKeySize);
  auto new_key = SecretBytes::Random(kDataKeySize);
  ASSERT_TRUE(old_key.ok() && new_key.ok());
  auto old_copy = SecretBytes::Copy(old_key->bytes());
  auto new_copy = SecretBytes::Copy(new_key->bytes());
  ASSERT_TRUE(old_copy.ok() && new_copy.ok());
  Markers markers;
  {
    auto store = EncryptedStore::Open(Options(), std::move(*old_key));
    ASSERT_TRUE(store.ok()) << store.error().message;
    auto dir = (*store)->Unlock("alpha");
    ASSERT_TRUE(dir.ok()) << dir.error().message;
    WriteMarkedFiles(*dir, "alpha", markers);
    ASSERT_TRUE((*store)->RotateDataKey(std::move(*new_key)).ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  std::vector<std::string> needles;
  for (const SecretBytes* key : {&*old_copy, &*new_copy}) {
    needles.emplace_back(View(*key));
    needles.push_back(Hex(*key));
    auto derived = DeriveInstrumentKey(*key, "alpha");
    ASSERT_TRUE(derived.ok());
    needles.emplace_back(View(*derived));
    needles.push_back(Hex(*derived));
  }
  ExpectInImage(image_, needles, false, "key");
  // Rotation copies through plaintext in memory only: the image holds
  // neither the old nor the new directory's contents in the clear.
  ExpectInImage(image_, {markers.content}, false, "file content");
  ExpectInImage(image_, markers.names, false, "file name");
}

}  // namespace
}  // namespace custos::storage
