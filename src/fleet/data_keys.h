// Per-sensor data keys (the key that unlocks a sensor's encrypted store).
// Each is 32 random bytes made at enrollment and kept only wrapped: AES-256-GCM
// under the fleet master key (DIR/master.key, 32 bytes, 0600), with the
// sensor id as associated data so a wrapped key moved to another sensor's row
// does not unwrap. DataKeyService hands out a sensor's unwrapped key and
// refuses revoked or unknown sensors. Thread-safe: the master key is
// immutable after construction and the store is thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "fleet/fleet_store.h"

namespace custos::fleet {

inline constexpr std::size_t kKeyBytes = 32;

// 32 secret bytes, wiped when destroyed.
class KeyBytes {
 public:
  KeyBytes() = default;
  KeyBytes(const KeyBytes& other) = default;
  KeyBytes& operator=(const KeyBytes& other) = default;
  ~KeyBytes();

  unsigned char* data() { return bytes_.data(); }
  const unsigned char* data() const { return bytes_.data(); }
  static constexpr std::size_t size() { return kKeyBytes; }
  bool operator==(const KeyBytes& other) const;

 private:
  std::array<unsigned char, kKeyBytes> bytes_{};
};

Result<KeyBytes> RandomKey();

// Creates the master key file with fresh random bytes; refuses an existing file.
Status CreateMasterKeyFile(const std::filesystem::path& path);
// Refuses a symlink, a file group or others may access, or a wrong size.
Result<KeyBytes> ReadMasterKeyFile(const std::filesystem::path& path);

// "v1:" then hex of nonce (12) | ciphertext (32) | tag (16).
Result<std::string> WrapDataKey(const KeyBytes& master, const KeyBytes& data_key,
                                std::string_view sensor_id);
// Fails on any change to the text, a different master key or sensor id.
Result<KeyBytes> UnwrapDataKey(const KeyBytes& master, std::string_view wrapped,
                               std::string_view sensor_id);

struct SensorDataKeys {
  KeyBytes current;
  std::int64_t version = 1;
  std::optional<KeyBytes> pending;  // the sensor must re-key to this one
  std::int64_t pending_version = 0;
};

class DataKeyService {
 public:
  DataKeyService(FleetStore& store, KeyBytes master) : store_(store), master_(master) {}

  // A fresh key for a sensor being enrolled, wrapped for its row.
  Result<std::string> NewWrappedKey(std::string_view sensor_id) const;
  // The sensor's key, for the channel to send it (issue 6). Refused for a
  // revoked or unknown sensor.
  Result<KeyBytes> KeyFor(std::string_view sensor_id) const;
  // The current key with its version, and the pending one if a re-key was
  // ordered. Refused for a revoked or unknown sensor.
  Result<SensorDataKeys> KeysFor(std::string_view sensor_id) const;
  // Orders a re-key: a fresh pending key; returns its version.
  Result<std::int64_t> OrderRekey(std::string_view sensor_id) const;
  // The sensor re-encrypted under `version`: it becomes current. False when
  // that version is not pending.
  Result<bool> ConfirmRekey(std::string_view sensor_id, std::int64_t version) const;

 private:
  FleetStore& store_;
  const KeyBytes master_;
};

}  // namespace custos::fleet
