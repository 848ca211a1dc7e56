// Small file helpers used across the daemons.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "common/result.h"

namespace custos {

Result<std::string> ReadFile(const std::filesystem::path& path);

// Writes all `size` bytes to `fd`, going on after short writes and EINTR;
// an error says "cannot write <what>".
Status WriteAll(int fd, const void* data, std::size_t size, const std::string& what);

// Writes to a temporary file beside `path`, fsyncs, then renames over it, so
// a reader sees either the old or the new content, never a mix.
Status WriteFileAtomic(const std::filesystem::path& path, const std::string& content,
                       unsigned mode = 0644);

// Creates `path` and missing parents; sets `mode` on `path` only if created.
Status MakeDirectories(const std::filesystem::path& path, unsigned mode = 0755);

}  // namespace custos
