// Private key files. Writing is atomic (a fresh 0600 file created with
// O_EXCL|O_NOFOLLOW beside the target, fsynced, then renamed over it), so a
// crash leaves the old key or the new one, and no other user can ever read
// it. Reading refuses files that group or others may access, and symlinks.
// Thread-safe; two writers to the same path leave one of their keys.
#pragma once

#include <filesystem>

#include "common/result.h"
#include "crypto/key.h"

namespace custos::crypto {

Status WritePrivateKeyFile(const std::filesystem::path& path, const KeyPair& key);
Result<KeyPair> ReadPrivateKeyFile(const std::filesystem::path& path);

}  // namespace custos::crypto
