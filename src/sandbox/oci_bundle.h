// Writes an OCI runtime bundle (config.json) for one container. Its root
// filesystem, assembled beforehand (see rootfs.h), is mounted read-only.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "sandbox/container_spec.h"

namespace custos {

nlohmann::json BuildOciConfig(const ContainerSpec& spec);

// Writes bundle_dir/config.json.
Status WriteOciBundle(const ContainerSpec& spec, const std::string& bundle_dir);

}  // namespace custos
