// Platform service: copies a file an instrument handed over (as a
// descriptor) into another instrument's inbox, <persistent dir>/inbox/,
// owned by the recipient. The recipient controls that directory and may have
// planted symlinks, so every step is relative to a descriptor opened with
// O_NOFOLLOW, and the file is created with O_EXCL.
#pragma once

#include <cstdint>
#include <string>

#include "custos/result.h"

namespace custos::bus {

struct DeliveredFile {
  std::string relative_path;  // e.g. inbox/1763910000123456-9f3a0c1d-manager-rules.txt
  std::uint64_t size = 0;
};

// `source_fd` must be a regular file (a memfd is one) of at most max_bytes.
Result<DeliveredFile> DeliverToInbox(int source_fd, const std::string& persistent_dir,
                                     std::uint32_t owner_uid, const std::string& sender,
                                     const std::string& file_name, std::uint64_t max_bytes);

}  // namespace custos::bus
