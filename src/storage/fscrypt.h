// The kernel's fscrypt v2 interface (<linux/fscrypt.h>) for one mounted
// filesystem: adding and removing master keys, setting and checking a
// directory's policy, asking whether a key is present. Thin wrappers over
// the ioctls with errors that say what to do; no state, safe from any
// thread. Adding and removing keys for all users needs CAP_SYS_ADMIN.
//
// Every directory we encrypt uses one policy: v2, AES-256-XTS for contents,
// AES-256-CTS for names, names padded to 32 bytes (hides their length best).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "storage/key_material.h"

namespace custos::storage {

// The kernel's name for a v2 master key: a hash of the key, safe to store
// and log (FSCRYPT_KEY_IDENTIFIER_SIZE bytes).
using KeyIdentifier = std::array<std::uint8_t, 16>;

std::string ToHex(const KeyIdentifier& identifier);

struct EncryptionPolicy {
  int version = 0;  // 2 for v2; v1 policies read back with version 0
  int contents_mode = 0;
  int filenames_mode = 0;
  int flags = 0;
  KeyIdentifier key{};  // v2 only
};

// Adds `key` (raw, 16-64 bytes) to the filesystem holding `fs_fd` (any
// descriptor on it, usually its root) and returns its identifier. Adding a
// key that is already present is harmless.
Result<KeyIdentifier> AddEncryptionKey(int fs_fd, const SecretBytes& key);

// Sets our v2 policy on an empty directory. The key must have been added
// (the kernel waives that for CAP_FOWNER, so root is not stopped by it).
Status SetEncryptionPolicy(int directory_fd, const KeyIdentifier& key);

// The policy of `fd`, or nullopt when it is not encrypted.
Result<std::optional<EncryptionPolicy>> GetEncryptionPolicy(int fd);

// Refuses, with a message naming `what`, unless `directory_fd` carries
// exactly our policy with key `expected`.
Status VerifyEncryptionPolicy(int directory_fd, const KeyIdentifier& expected,
                              const std::string& what);

enum class KeyRemoval {
  kRemoved,    // gone (or was not there)
  kFilesBusy,  // secret wiped, but files and directories still open (or a
               // process's working directory) keep their own keys until
               // closed; call again after they are closed
};

// Removes the key for all users (FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS):
// the kernel wipes the secret and evicts the cached plaintext and names of
// every file that is not in use.
Result<KeyRemoval> RemoveEncryptionKey(int fs_fd, const KeyIdentifier& key);

enum class KeyStatus { kLocked, kUnlocked, kIncompletelyRemoved };

// "locked", "unlocked" or "locked, files still open".
std::string_view KeyStatusName(KeyStatus status);

Result<KeyStatus> GetEncryptionKeyStatus(int fs_fd, const KeyIdentifier& key);

}  // namespace custos::storage
