#include "storage/key_material.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace custos::storage {
namespace {

Error OpenSslFailure(const std::string& what) {
  std::string message = what;
  unsigned long code = 0;
  while ((code = ERR_get_error()) != 0) {
    char reason[256];
    ERR_error_string_n(code, reason, sizeof reason);
    message += ": ";
    message += reason;
  }
  return Error{message};
}

struct KdfDeleter {
  void operator()(EVP_KDF* kdf) const { EVP_KDF_free(kdf); }
};
struct KdfContextDeleter {
  void operator()(EVP_KDF_CTX* context) const { EVP_KDF_CTX_free(context); }
};

}  // namespace

Result<SecretBytes> SecretBytes::Allocate(std::size_t size) {
  if (size == 0) return Error{"secret of zero bytes"};
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::size_t mapping_size = (size + page - 1) / page * page;
  // A mapping of its own, so locking and the madvise flags cover the secret
  // and nothing else, and unmapping returns it whole.
  void* mapping =
      ::mmap(nullptr, mapping_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) return ErrnoError("mmap for a secret");
  auto fail = [&](const std::string& what) {
    Error error = ErrnoError(what);
    ::munmap(mapping, mapping_size);
    return error;
  };
  // The raw system call: sanitizers replace mlock() with a no-op.
  if (::syscall(SYS_mlock, mapping, mapping_size) != 0)
    return fail("mlock (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK)");
  if (::madvise(mapping, mapping_size, MADV_DONTDUMP) != 0) return fail("madvise(MADV_DONTDUMP)");
  if (::madvise(mapping, mapping_size, MADV_WIPEONFORK) != 0)
    return fail("madvise(MADV_WIPEONFORK)");
  return SecretBytes(static_cast<std::uint8_t*>(mapping), size, mapping_size);
}

Result<SecretBytes> SecretBytes::Copy(std::span<const std::uint8_t> bytes) {
  auto secret = Allocate(bytes.size());
  if (!secret) return secret.error();
  std::memcpy(secret->data(), bytes.data(), bytes.size());
  return secret;
}

Result<SecretBytes> SecretBytes::Random(std::size_t size) {
  auto secret = Allocate(size);
  if (!secret) return secret.error();
  if (RAND_bytes(secret->data(), static_cast<int>(size)) != 1) return OpenSslFailure("RAND_bytes");
  return secret;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapping_size_(std::exchange(other.mapping_size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapping_size_ = std::exchange(other.mapping_size_, 0);
  }
  return *this;
}

SecretBytes::~SecretBytes() { Wipe(); }

void SecretBytes::Wipe() {
  if (data_ == nullptr) return;
  OPENSSL_cleanse(data_, mapping_size_);
  ::syscall(SYS_munlock, data_, mapping_size_);
  ::munmap(data_, mapping_size_);
  data_ = nullptr;
  size_ = 0;
  mapping_size_ = 0;
}

bool SecretBytes::Equals(const SecretBytes& other) const {
  return size_ == other.size_ && CRYPTO_memcmp(data_, other.data_, size_) == 0;
}

Result<SecretBytes> DeriveKey(const SecretBytes& data_key, std::string_view info,
                              std::size_t size) {
  if (data_key.size() != kDataKeySize) {
    return Error{std::string("data key must be ") + std::to_string(kDataKeySize) + " bytes, not " +
                 std::to_string(data_key.size())};
  }
  std::unique_ptr<EVP_KDF, KdfDeleter> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) return OpenSslFailure("EVP_KDF_fetch HKDF");
  // OpenSSL copies the key into the context and cleanses it when the
  // context is freed, at the end of this function.
  std::unique_ptr<EVP_KDF_CTX, KdfContextDeleter> context(EVP_KDF_CTX_new(kdf.get()));
  if (!context) return OpenSslFailure("EVP_KDF_CTX_new");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(data_key.data()), data_key.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end(),
  };
  auto key = SecretBytes::Allocate(size);
  if (!key) return key.error();
  if (EVP_KDF_derive(context.get(), key->data(), size, params) != 1)
    return OpenSslFailure("HKDF-SHA256");
  return key;
}

Result<SecretBytes> DeriveInstrumentKey(const SecretBytes& data_key, std::string_view instrument) {
  if (instrument.empty()) return Error{"empty instrument name"};
  std::string info = "custos instrument ";
  info += instrument;
  return DeriveKey(data_key, info);
}

Result<SecretBytes> DeriveSpoolKey(const SecretBytes& data_key) {
  return DeriveKey(data_key, "custos spool");
}

}  // namespace custos::storage
