#include "storage/fscrypt.h"

#include <linux/fscrypt.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace custos::storage {
namespace {

static_assert(sizeof(KeyIdentifier) == FSCRYPT_KEY_IDENTIFIER_SIZE);

constexpr int kContentsMode = FSCRYPT_MODE_AES_256_XTS;
constexpr int kFilenamesMode = FSCRYPT_MODE_AES_256_CTS;
constexpr int kFlags = FSCRYPT_POLICY_FLAGS_PAD_32;

fscrypt_key_specifier Specifier(const KeyIdentifier& key) {
  fscrypt_key_specifier spec{};
  spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
  std::memcpy(spec.u.identifier, key.data(), key.size());
  return spec;
}

// ext4 answers EOPNOTSUPP when the filesystem lacks the feature, ENOTTY when
// the filesystem type has no fscrypt at all.
Error UnsupportedOr(const std::string& what, int error_number) {
  if (error_number == EOPNOTSUPP || error_number == ENOTTY) {
    return Error{what +
                 ": the filesystem does not support encryption (ext4 needs mkfs.ext4 -O "
                 "encrypt, and a kernel with CONFIG_FS_ENCRYPTION)"};
  }
  return ErrnoError(what, error_number);
}

}  // namespace

std::string ToHex(const KeyIdentifier& identifier) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (std::uint8_t byte : identifier) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0xf];
  }
  return hex;
}

Result<KeyIdentifier> AddEncryptionKey(int fs_fd, const SecretBytes& key) {
  if (key.size() < 16 || key.size() > FSCRYPT_MAX_KEY_SIZE)
    return Error{std::string("fscrypt keys are 16 to 64 bytes, not ") + std::to_string(key.size())};
  // The argument carries the raw key, so it lives in locked memory too.
  auto buffer = SecretBytes::Allocate(sizeof(fscrypt_add_key_arg) + key.size());
  if (!buffer) return buffer.error();
  auto* arg = reinterpret_cast<fscrypt_add_key_arg*>(buffer->data());
  arg->key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
  arg->raw_size = static_cast<std::uint32_t>(key.size());
  std::memcpy(buffer->data() + sizeof(fscrypt_add_key_arg), key.data(), key.size());
  if (::ioctl(fs_fd, FS_IOC_ADD_ENCRYPTION_KEY, arg) != 0)
    return UnsupportedOr("FS_IOC_ADD_ENCRYPTION_KEY", errno);
  KeyIdentifier identifier;
  std::memcpy(identifier.data(), arg->key_spec.u.identifier, identifier.size());
  return identifier;
}

Status SetEncryptionPolicy(int directory_fd, const KeyIdentifier& key) {
  fscrypt_policy_v2 policy{};
  policy.version = FSCRYPT_POLICY_V2;
  policy.contents_encryption_mode = kContentsMode;
  policy.filenames_encryption_mode = kFilenamesMode;
  policy.flags = kFlags;
  std::memcpy(policy.master_key_identifier, key.data(), key.size());
  if (::ioctl(directory_fd, FS_IOC_SET_ENCRYPTION_POLICY, &policy) == 0) return {};
  int error_number = errno;
  std::string what = "FS_IOC_SET_ENCRYPTION_POLICY (key ";
  what += ToHex(key) + ")";
  switch (error_number) {
    case ENOTEMPTY:
      return Error{what + ": the directory is not empty; only empty directories can be encrypted"};
    case EEXIST:
      return Error{what + ": the directory is already encrypted with another policy"};
    case ENOKEY:
      return Error{what + ": the key has not been added to this filesystem"};
    case ENOTDIR:
      return Error{what + ": not a directory"};
    default:
      return UnsupportedOr(what, error_number);
  }
}

Result<std::optional<EncryptionPolicy>> GetEncryptionPolicy(int fd) {
  fscrypt_get_policy_ex_arg arg{};
  arg.policy_size = sizeof(arg.policy);
  if (::ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &arg) != 0) {
    if (errno == ENODATA) return std::optional<EncryptionPolicy>{};
    if (errno == EINVAL) return Error{"FS_IOC_GET_ENCRYPTION_POLICY_EX: unknown policy version"};
    return UnsupportedOr("FS_IOC_GET_ENCRYPTION_POLICY_EX", errno);
  }
  EncryptionPolicy policy;
  policy.version = arg.policy.version;
  if (arg.policy.version == FSCRYPT_POLICY_V2) {
    policy.contents_mode = arg.policy.v2.contents_encryption_mode;
    policy.filenames_mode = arg.policy.v2.filenames_encryption_mode;
    policy.flags = arg.policy.v2.flags;
    std::memcpy(policy.key.data(), arg.policy.v2.master_key_identifier, policy.key.size());
  } else {
    policy.contents_mode = arg.policy.v1.contents_encryption_mode;
    policy.filenames_mode = arg.policy.v1.filenames_encryption_mode;
    policy.flags = arg.policy.v1.flags;
  }
  return std::optional<EncryptionPolicy>(policy);
}

Status VerifyEncryptionPolicy(int directory_fd, const KeyIdentifier& expected,
                              const std::string& what) {
  auto policy = GetEncryptionPolicy(directory_fd);
  if (!policy) return Context(what, policy.error());
  if (!*policy) return Error{what + " is not encrypted"};
  const EncryptionPolicy& actual = **policy;
  if (actual.version != FSCRYPT_POLICY_V2)
    return Error{what + " has a v1 encryption policy; only v2 is accepted"};
  if (actual.contents_mode != kContentsMode || actual.filenames_mode != kFilenamesMode ||
      actual.flags != kFlags) {
    return Error{what + " is encrypted with other modes or flags (contents " +
                 std::to_string(actual.contents_mode) + ", names " +
                 std::to_string(actual.filenames_mode) + ", flags " + std::to_string(actual.flags) +
                 ")"};
  }
  if (actual.key != expected) {
    return Error{what + " is encrypted under key " + ToHex(actual.key) + ", not the expected " +
                 ToHex(expected) + " (a different data key?)"};
  }
  return {};
}

Result<KeyRemoval> RemoveEncryptionKey(int fs_fd, const KeyIdentifier& key) {
  fscrypt_remove_key_arg arg{};
  arg.key_spec = Specifier(key);
  if (::ioctl(fs_fd, FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS, &arg) != 0) {
    if (errno == ENOKEY) return KeyRemoval::kRemoved;
    int error_number = errno;
    std::string what = "FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS (key ";
    what += ToHex(key) + ")";
    return UnsupportedOr(what, error_number);
  }
  if (arg.removal_status_flags & FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY)
    return KeyRemoval::kFilesBusy;
  return KeyRemoval::kRemoved;
}

std::string_view KeyStatusName(KeyStatus status) {
  switch (status) {
    case KeyStatus::kLocked:
      return "locked";
    case KeyStatus::kUnlocked:
      return "unlocked";
    case KeyStatus::kIncompletelyRemoved:
      return "locked, files still open";
  }
  return "unknown";
}

Result<KeyStatus> GetEncryptionKeyStatus(int fs_fd, const KeyIdentifier& key) {
  fscrypt_get_key_status_arg arg{};
  arg.key_spec = Specifier(key);
  if (::ioctl(fs_fd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, &arg) != 0)
    return UnsupportedOr("FS_IOC_GET_ENCRYPTION_KEY_STATUS", errno);
  switch (arg.status) {
    case FSCRYPT_KEY_STATUS_ABSENT:
      return KeyStatus::kLocked;
    case FSCRYPT_KEY_STATUS_PRESENT:
      return KeyStatus::kUnlocked;
    case FSCRYPT_KEY_STATUS_INCOMPLETELY_REMOVED:
      return KeyStatus::kIncompletelyRemoved;
    default:
      return Error{std::string("FS_IOC_GET_ENCRYPTION_KEY_STATUS: unknown status ") +
                   std::to_string(arg.status)};
  }
}

}  // namespace custos::storage
