// Secret key bytes kept out of swap, core dumps and forked children, and the
// derivation of each encrypted directory's key from the sensor's data key.
// A SecretBytes is a movable owner of one mlock()ed, MADV_DONTDUMP and
// MADV_WIPEONFORK mapping that is wiped on destruction; it is never copied.
// Not thread-safe per object; the derivation functions are safe from any
// thread (they touch only their arguments and OpenSSL's per-thread state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/result.h"

namespace custos::storage {

// The sensor's data key, as the fleet hands it over at boot.
inline constexpr std::size_t kDataKeySize = 32;
// A directory's fscrypt master key. v2 policies need at least the mode's
// security strength (32 bytes for AES-256-XTS); the kernel expands it with
// HKDF-SHA512 into per-file keys.
inline constexpr std::size_t kDirectoryKeySize = 32;

class SecretBytes {
 public:
  // Zero-filled locked memory of `size` bytes (1 to one page's worth is
  // typical). Fails when mlock() is refused (RLIMIT_MEMLOCK without
  // CAP_IPC_LOCK) rather than hand out memory that may be swapped.
  static Result<SecretBytes> Allocate(std::size_t size);
  // Copies `bytes` into locked memory. The caller wipes its own copy.
  static Result<SecretBytes> Copy(std::span<const std::uint8_t> bytes);
  // `size` bytes from OpenSSL's CSPRNG.
  static Result<SecretBytes> Random(std::size_t size);

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  std::size_t size() const { return size_; }
  std::uint8_t* data() { return data_; }
  const std::uint8_t* data() const { return data_; }
  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  // Constant-time comparison of contents (sizes may differ).
  bool Equals(const SecretBytes& other) const;

 private:
  SecretBytes(std::uint8_t* data, std::size_t size, std::size_t mapping_size)
      : data_(data), size_(size), mapping_size_(mapping_size) {}
  void Wipe();

  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t mapping_size_ = 0;
};

// HKDF-SHA256 (RFC 5869, no salt) of `data_key` with `info`, `size` bytes,
// written straight into locked memory.
Result<SecretBytes> DeriveKey(const SecretBytes& data_key, std::string_view info,
                              std::size_t size = kDirectoryKeySize);

// info "custos instrument <name>": one key per instrument directory.
Result<SecretBytes> DeriveInstrumentKey(const SecretBytes& data_key, std::string_view instrument);

// info "custos spool": the uplink's event spool.
Result<SecretBytes> DeriveSpoolKey(const SecretBytes& data_key);

}  // namespace custos::storage
