#include "fleet/data_keys.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "common/files.h"
#include "common/unique_fd.h"

namespace custos::fleet {
namespace {

constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::string_view kPrefix = "v1:";
constexpr std::string_view kAssociatedPrefix = "custos sensor data key v1:";

struct CipherContextDeleter {
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextDeleter>;

std::string Hex(const unsigned char* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    hex += kDigits[data[i] >> 4];
    hex += kDigits[data[i] & 0xF];
  }
  return hex;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string AssociatedData(std::string_view sensor_id) {
  std::string data(kAssociatedPrefix);
  data += sensor_id;
  return data;
}

}  // namespace

KeyBytes::~KeyBytes() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

bool KeyBytes::operator==(const KeyBytes& other) const {
  return CRYPTO_memcmp(bytes_.data(), other.bytes_.data(), bytes_.size()) == 0;
}

Result<KeyBytes> RandomKey() {
  KeyBytes key;
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    return Error{"RAND_bytes failed to make a key"};
  }
  return key;
}

Status CreateMasterKeyFile(const std::filesystem::path& path) {
  auto key = RandomKey();
  if (!key.ok()) return key.error();
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("cannot create " + path.string());
  CUSTOS_TRY(WriteAll(fd.get(), key->data(), key->size(), path.string()));
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + path.string());
  return {};
}

Result<KeyBytes> ReadMasterKeyFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("cannot open master key " + path.string());
  struct stat status {};
  if (::fstat(fd.get(), &status) != 0) return ErrnoError("stat " + path.string());
  if (!S_ISREG(status.st_mode)) return Error{"master key " + path.string() + " is not a file"};
  if ((status.st_mode & 077) != 0) {
    return Error{"master key " + path.string() + " is readable by group or others; chmod 600 it"};
  }
  if (status.st_size != static_cast<off_t>(kKeyBytes)) {
    return Error{"master key " + path.string() + " must be exactly 32 bytes"};
  }
  KeyBytes key;
  std::size_t read = 0;
  while (read < key.size()) {
    ssize_t n = ::read(fd.get(), key.data() + read, key.size() - read);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("cannot read master key " + path.string());
    read += static_cast<std::size_t>(n);
  }
  return key;
}

Result<std::string> WrapDataKey(const KeyBytes& master, const KeyBytes& data_key,
                                std::string_view sensor_id) {
  unsigned char sealed[kNonceBytes + kKeyBytes + kTagBytes];
  unsigned char* nonce = sealed;
  unsigned char* ciphertext = sealed + kNonceBytes;
  unsigned char* tag = ciphertext + kKeyBytes;
  if (RAND_bytes(nonce, kNonceBytes) != 1) return Error{"RAND_bytes failed to make a nonce"};
  CipherContext context(EVP_CIPHER_CTX_new());
  std::string associated = AssociatedData(sensor_id);
  int length = 0;
  if (!context ||
      EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, master.data(), nonce) != 1 ||
      EVP_EncryptUpdate(context.get(), nullptr, &length,
                        reinterpret_cast<const unsigned char*>(associated.data()),
                        static_cast<int>(associated.size())) != 1 ||
      EVP_EncryptUpdate(context.get(), ciphertext, &length, data_key.data(),
                        static_cast<int>(data_key.size())) != 1 ||
      length != static_cast<int>(kKeyBytes) ||
      EVP_EncryptFinal_ex(context.get(), ciphertext + length, &length) != 1 ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag) != 1) {
    return Error{"AES-256-GCM failed to wrap the data key"};
  }
  std::string wrapped(kPrefix);
  wrapped += Hex(sealed, sizeof sealed);
  return wrapped;
}

Result<KeyBytes> UnwrapDataKey(const KeyBytes& master, std::string_view wrapped,
                               std::string_view sensor_id) {
  constexpr std::size_t kSealedBytes = kNonceBytes + kKeyBytes + kTagBytes;
  if (wrapped.substr(0, kPrefix.size()) != kPrefix ||
      wrapped.size() != kPrefix.size() + 2 * kSealedBytes) {
    return Error{"wrapped data key has an unknown format"};
  }
  wrapped.remove_prefix(kPrefix.size());
  unsigned char sealed[kSealedBytes];
  for (std::size_t i = 0; i < kSealedBytes; ++i) {
    int high = HexDigit(wrapped[2 * i]), low = HexDigit(wrapped[2 * i + 1]);
    if (high < 0 || low < 0) return Error{"wrapped data key is not hex"};
    sealed[i] = static_cast<unsigned char>(high * 16 + low);
  }
  unsigned char* nonce = sealed;
  unsigned char* ciphertext = sealed + kNonceBytes;
  unsigned char* tag = ciphertext + kKeyBytes;
  CipherContext context(EVP_CIPHER_CTX_new());
  std::string associated = AssociatedData(sensor_id);
  KeyBytes key;
  int length = 0;
  if (!context ||
      EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, master.data(), nonce) != 1 ||
      EVP_DecryptUpdate(context.get(), nullptr, &length,
                        reinterpret_cast<const unsigned char*>(associated.data()),
                        static_cast<int>(associated.size())) != 1 ||
      EVP_DecryptUpdate(context.get(), key.data(), &length, ciphertext,
                        static_cast<int>(kKeyBytes)) != 1 ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) != 1 ||
      EVP_DecryptFinal_ex(context.get(), key.data() + length, &length) != 1) {
    return Error{"wrapped data key does not authenticate (other master key, sensor or damage)"};
  }
  return key;
}

Result<std::string> DataKeyService::NewWrappedKey(std::string_view sensor_id) const {
  auto key = RandomKey();
  if (!key.ok()) return key.error();
  return WrapDataKey(master_, *key, sensor_id);
}

Result<SensorDataKeys> DataKeyService::KeysFor(std::string_view sensor_id) const {
  auto current = KeyFor(sensor_id);
  if (!current.ok()) return current.error();
  std::string where = "data key of ";
  where += sensor_id;
  auto versions = store_.DataKeyVersionsOf(sensor_id);
  if (!versions.ok()) return Context(where, versions.error());
  if (!versions->has_value()) return Context(where, Error{"unknown or revoked sensor"});
  SensorDataKeys keys{*current, (*versions)->version, std::nullopt, 0};
  if ((*versions)->pending_wrapped) {
    auto pending = UnwrapDataKey(master_, *(*versions)->pending_wrapped, sensor_id);
    if (!pending.ok()) return Context(where, pending.error());
    keys.pending = *pending;
    keys.pending_version = (*versions)->pending_version;
  }
  return keys;
}

Result<std::int64_t> DataKeyService::OrderRekey(std::string_view sensor_id) const {
  auto wrapped = NewWrappedKey(sensor_id);
  if (!wrapped.ok()) return wrapped.error();
  return store_.SetPendingDataKey(sensor_id, *wrapped);
}

Result<bool> DataKeyService::ConfirmRekey(std::string_view sensor_id, std::int64_t version) const {
  return store_.PromotePendingDataKey(sensor_id, version);
}

Result<KeyBytes> DataKeyService::KeyFor(std::string_view sensor_id) const {
  std::string where = "data key of ";
  where += sensor_id;
  auto sensor = store_.GetSensor(sensor_id);
  if (!sensor.ok()) return Context(where, sensor.error());
  if (!sensor->has_value()) return Context(where, Error{"unknown sensor"});
  if ((*sensor)->revoked_at) return Context(where, Error{"sensor is revoked"});
  auto wrapped = store_.WrappedDataKey(sensor_id);
  if (!wrapped.ok()) return Context(where, wrapped.error());
  if (!wrapped->has_value()) return Context(where, Error{"sensor has no data key"});
  auto key = UnwrapDataKey(master_, **wrapped, sensor_id);
  if (!key.ok()) return Context(where, key.error());
  return key;
}

}  // namespace custos::fleet
