// An instrument's persistent directory under the sensor's data root: created
// on first start, owned by the instrument's own host uid, mode 0700, kept
// across restarts. (Transient storage is a tmpfs in the OCI bundle.)
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace custos {

std::string PersistentDirectory(const std::string& data_root, const std::string& instrument);

// Creates the directory if missing and makes sure it belongs to host_uid.
Result<std::string> PreparePersistentDirectory(const std::string& data_root,
                                               const std::string& instrument,
                                               std::uint32_t host_uid);

}  // namespace custos
