#include "crypto/key_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common/files.h"
#include "common/unique_fd.h"

namespace custos::crypto {
namespace {

// A PEM key of any type Custos accepts is a few kilobytes at most.
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

// Wipes a secret held in a std::string when the scope ends.
class Cleanse {
 public:
  explicit Cleanse(std::string& secret) : secret_(secret) {}
  ~Cleanse() { OPENSSL_cleanse(secret_.data(), secret_.size()); }
  Cleanse(const Cleanse&) = delete;
  Cleanse& operator=(const Cleanse&) = delete;

 private:
  std::string& secret_;
};

std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

Result<std::string> RandomSuffix() {
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return OpenSslError("RAND_bytes");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string suffix;
  for (unsigned char byte : bytes) {
    suffix += kHex[byte >> 4];
    suffix += kHex[byte & 0xf];
  }
  return suffix;
}

Status SyncDirectory(const std::filesystem::path& directory) {
  UniqueFd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("cannot open " + directory.string());
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + directory.string());
  return {};
}

}  // namespace

Status WritePrivateKeyFile(const std::filesystem::path& path, const KeyPair& key) {
  auto pem = key.PrivatePem();
  if (!pem.ok()) return pem.error();
  Cleanse wipe(*pem);
  auto suffix = RandomSuffix();
  if (!suffix.ok()) return suffix.error();
  std::filesystem::path directory = path.parent_path().empty() ? "." : path.parent_path();
  std::string name = ".";
  name += path.filename().string();
  name += ".tmp-";
  name += *suffix;
  std::filesystem::path temporary = directory / name;

  UniqueFd fd(
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("cannot create " + temporary.string());
  auto fail = [&](Error error) {
    ::unlink(temporary.c_str());
    return error;
  };
  // The umask can only clear bits; fchmod makes the mode exactly 0600.
  if (::fchmod(fd.get(), 0600) != 0) return fail(ErrnoError("chmod " + temporary.string()));
  if (auto written = WriteAll(fd.get(), pem->data(), pem->size(), temporary.string());
      !written.ok()) {
    return fail(written.error());
  }
  if (::fsync(fd.get()) != 0) return fail(ErrnoError("fsync " + temporary.string()));
  fd.reset();
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return fail(ErrnoError("cannot rename " + temporary.string() + " to " + path.string()));
  }
  return SyncDirectory(directory);
}

Result<KeyPair> ReadPrivateKeyFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ELOOP) return Error{"refusing private key " + path.string() + ": it is a symlink"};
    return ErrnoError("cannot read private key " + path.string());
  }
  struct stat status {};
  if (::fstat(fd.get(), &status) != 0) return ErrnoError("stat " + path.string());
  if (!S_ISREG(status.st_mode)) {
    return Error{"refusing private key " + path.string() + ": not a regular file"};
  }
  if (status.st_mode & (S_IRWXG | S_IRWXO)) {
    return Error{"refusing private key " + path.string() + ": mode " + OctalMode(status.st_mode) +
                 " lets group or others access it (chmod 600 it)"};
  }
  if (static_cast<size_t>(status.st_size) > kMaxKeyFileBytes) {
    return Error{"refusing private key " + path.string() + ": larger than 64 KiB"};
  }
  std::string pem(static_cast<size_t>(status.st_size), '\0');
  Cleanse wipe(pem);
  size_t filled = 0;
  while (filled < pem.size()) {
    ssize_t n = ::read(fd.get(), pem.data() + filled, pem.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot read private key " + path.string());
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  auto key = KeyPair::FromPrivatePem(std::string_view(pem.data(), filled));
  if (!key.ok()) return Context("private key " + path.string(), key.error());
  return key;
}

}  // namespace custos::crypto
