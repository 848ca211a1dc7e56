// Benchmarks the encrypted data store: sequential write (1 MiB writes, one
// fsync at the end) and read throughput of a file in an unlocked instrument
// directory (fscrypt, AES-256-XTS) beside an unencrypted directory on the
// same volume in the same run (the .peer figures). The volume is an image
// file on a loop device with direct I/O, so the reads that follow dropping
// the file's page cache (POSIX_FADV_DONTNEED) really go to the disk and
// through decryption. Median of N rounds, encrypted and plain taking turns
// to go first. MB is 10^6 bytes. Needs root. The kernel's AES driver is
// printed to stderr: without AES-NI support in the kernel (aesni_intel),
// fscrypt falls back to generic C AES and the gap is large.
#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "storage/encrypted_store.h"
#include "storage/encrypted_volume.h"
#include "storage/key_material.h"

namespace custos {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  std::size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

double MegabytesPerSecond(std::uint64_t bytes, Clock::duration elapsed) {
  return static_cast<double>(bytes) / 1e6 / std::chrono::duration<double>(elapsed).count();
}

struct Throughput {
  double write_mb_s = 0;
  double read_mb_s = 0;
};

// Writes `blocks` times `block`, fsyncs, drops the file's cached pages, then
// reads it all back; removes the file.
Result<Throughput> Measure(const std::string& path, const std::vector<char>& block,
                           std::size_t blocks) {
  Throughput result;
  const std::uint64_t total = std::uint64_t{block.size()} * blocks;
  {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoError("cannot create " + path);
    auto start = Clock::now();
    for (std::size_t i = 0; i < blocks; ++i) {
      if (::write(fd.get(), block.data(), block.size()) != static_cast<ssize_t>(block.size()))
        return ErrnoError("cannot write " + path);
    }
    if (::fsync(fd.get()) != 0) return ErrnoError("cannot fsync " + path);
    result.write_mb_s = MegabytesPerSecond(total, Clock::now() - start);
    // Clean pages only, after the fsync: all of them go.
    if (int error = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED); error != 0)
      return ErrnoError("posix_fadvise " + path, error);
  }
  {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("cannot open " + path);
    std::vector<char> buffer(block.size());
    std::uint64_t read_bytes = 0;
    auto start = Clock::now();
    for (;;) {
      ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
      if (n < 0) return ErrnoError("cannot read " + path);
      if (n == 0) break;
      read_bytes += static_cast<std::uint64_t>(n);
    }
    result.read_mb_s = MegabytesPerSecond(read_bytes, Clock::now() - start);
    if (read_bytes != total) return Error{"short read of " + path};
  }
  if (::unlink(path.c_str()) != 0) return ErrnoError("cannot remove " + path);
  return result;
}

// The kernel's implementation of fscrypt's contents cipher, the one figure
// that decides the gap: "xts-aes-aesni" (or another accelerated driver)
// keeps up with a disk, the generic C "xts(ecb(aes-fixed-time))" does not.
std::string XtsAesDriver() {
  std::ifstream crypto("/proc/crypto");
  std::string line, name, driver, best;
  int best_priority = -1;
  while (std::getline(crypto, line)) {
    auto value =
        line.substr(line.find(':') == std::string::npos ? line.size() : line.find(':') + 1);
    value.erase(0, value.find_first_not_of(' '));
    if (line.rfind("name", 0) == 0) name = value;
    if (line.rfind("driver", 0) == 0) driver = value;
    if (line.rfind("priority", 0) == 0 && name == "xts(aes)" && std::stoi(value) > best_priority) {
      best_priority = std::stoi(value);
      best = driver;
    }
  }
  return best.empty() ? "not loaded yet" : best;
}

// The bench's folder, image and mount, removed on every exit path.
class BenchArea {
 public:
  explicit BenchArea(std::string root) : root_(std::move(root)) { CleanUp(); }
  ~BenchArea() {
    store_.reset();
    CleanUp();
  }
  std::string Path(const std::string& name) const { return root_ + "/" + name; }
  std::unique_ptr<storage::EncryptedStore>& store() { return store_; }

 private:
  void CleanUp() {
    std::error_code error;
    if (fs::exists(Path("store.img"), error)) {
      auto cleaned = storage::CleanUpImage(Path("store.img"));
      if (!cleaned) spdlog::warn("{}", cleaned.error().message);
    }
    fs::remove_all(root_, error);
  }

  std::string root_;
  std::unique_ptr<storage::EncryptedStore> store_;
};

int Run(const std::string& root, std::size_t size_mb, std::size_t block_kb, int rounds) {
  BenchArea area(root);
  if (auto made = MakeDirectories(root, 0700); !made) {
    spdlog::error("{}", made.error().message);
    return 1;
  }
  auto data_key = storage::SecretBytes::Random(storage::kDataKeySize);
  if (!data_key) {
    spdlog::error("{}", data_key.error().message);
    return 1;
  }
  const std::uint64_t image_bytes = (std::uint64_t{size_mb} << 20) * 2 + (std::uint64_t{256} << 20);
  auto store = storage::EncryptedStore::Open(
      {area.Path("store.img"), area.Path("data"), image_bytes}, std::move(*data_key));
  if (!store) {
    spdlog::error("{}", store.error().message);
    return 1;
  }
  area.store() = std::move(*store);
  auto encrypted_dir = area.store()->Unlock("bench");
  if (!encrypted_dir) {
    spdlog::error("{}", encrypted_dir.error().message);
    return 1;
  }
  const std::string plain_dir = area.store()->data_root() + "/plain";
  if (auto made = MakeDirectories(plain_dir, 0700); !made) {
    spdlog::error("{}", made.error().message);
    return 1;
  }

  // Random bytes, so nothing on the way can shortcut zeros.
  std::vector<char> block(block_kb << 10);
  RAND_bytes(reinterpret_cast<unsigned char*>(block.data()), static_cast<int>(block.size()));
  const std::size_t blocks = (size_mb << 20) / block.size();

  std::vector<double> encrypted_write, encrypted_read, plain_write, plain_read;
  for (int round = 0; round < rounds; ++round) {
    for (int turn = 0; turn < 2; ++turn) {
      const bool encrypted = (round + turn) % 2 == 0;
      const std::string path = (encrypted ? *encrypted_dir : plain_dir) + "/bench.bin";
      auto measured = Measure(path, block, blocks);
      if (!measured) {
        spdlog::error("{}", measured.error().message);
        return 1;
      }
      (encrypted ? encrypted_write : plain_write).push_back(measured->write_mb_s);
      (encrypted ? encrypted_read : plain_read).push_back(measured->read_mb_s);
    }
  }
  std::fprintf(stderr, "store_bench: kernel xts(aes) driver: %s\n", XtsAesDriver().c_str());
  std::printf("BENCH store_write_mb_s %.1f MB/s\n", Median(encrypted_write));
  std::printf("BENCH store_write_mb_s.peer %.1f MB/s\n", Median(plain_write));
  std::printf("BENCH store_read_mb_s %.1f MB/s\n", Median(encrypted_read));
  std::printf("BENCH store_read_mb_s.peer %.1f MB/s\n", Median(plain_read));
  std::fflush(stdout);
  auto closed = area.store()->Close();
  if (!closed) {
    spdlog::error("{}", closed.error().message);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace custos

int main(int argc, char** argv) {
  CLI::App app{"Encrypted store throughput against an unencrypted directory"};
  std::string root = "/var/tmp/custos-store-bench";
  std::size_t size_mb = 256;
  std::size_t block_kb = 1024;
  int rounds = 3;
  app.add_option("--dir", root, "scratch folder for the volume image (removed afterwards)");
  app.add_option("--size-mb", size_mb, "file size per measurement, MiB")
      ->check(CLI::Range(1, 4096));
  app.add_option("--block-kb", block_kb, "write and read size, KiB")->check(CLI::Range(4, 16384));
  app.add_option("--rounds", rounds, "measurements per kind (median reported)")
      ->check(CLI::Range(1, 50));
  CLI11_PARSE(app, argc, argv);
  custos::InitLogging("store_bench", false);
  return custos::Run(root, size_mb, block_kb, rounds);
}
