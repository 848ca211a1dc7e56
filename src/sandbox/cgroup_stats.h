// Reads a container's resource use from its cgroup (v1 or v2 layout).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace custos {

// Memory in use by the cgroup at `cgroup_path` (as in the OCI config), or
// nothing when the cgroup does not exist.
std::optional<std::uint64_t> CgroupMemoryBytes(const std::string& cgroup_path);
// Whether the memory controller killed a process for exceeding the limit.
std::optional<std::uint64_t> CgroupOomKills(const std::string& cgroup_path);
// Whether any cgroup directory for the path remains (after a delete, none should).
bool CgroupExists(const std::string& cgroup_path);
// Removes the (empty) cgroup directories for the path in every hierarchy;
// used for the parents the runtime creates but never deletes.
void RemoveEmptyCgroup(const std::string& cgroup_path);

}  // namespace custos
