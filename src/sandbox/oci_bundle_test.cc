#include "sandbox/oci_bundle.h"

#include <gtest/gtest.h>

namespace custos {
namespace {

ContainerSpec Spec() {
  ContainerSpec spec;
  spec.id = "s-a";
  spec.args = {"/usr/bin/tool"};
  spec.rootfs = "/run/custos/rootfs/a";
  spec.mounts = {{"/var/lib/custos/instruments/a", "/data", false}};
  spec.host_uid = 1'065'536;
  spec.capabilities = {"CAP_NET_RAW"};
  spec.memory_bytes = 64 << 20;
  spec.pids = 32;
  spec.cpus = 0.5;
  spec.cgroup_path = "/custos/s/a";
  return spec;
}

TEST(OciConfig, IsolatesInEveryNamespaceWithAnUnprivilegedUidRange) {
  auto config = BuildOciConfig(Spec());
  std::set<std::string> namespaces;
  for (const auto& ns : config["linux"]["namespaces"]) namespaces.insert(ns["type"]);
  for (const char* type : {"pid", "network", "ipc", "uts", "mount", "user"}) {
    EXPECT_TRUE(namespaces.contains(type)) << type;
  }
  EXPECT_EQ(config["linux"]["uidMappings"][0]["hostID"], 1'065'536);
  EXPECT_EQ(config["linux"]["uidMappings"][0]["containerID"], 0);
  EXPECT_EQ(config["root"]["readonly"], true);
  EXPECT_EQ(config["process"]["noNewPrivileges"], true);
}

TEST(OciConfig, GrantsOnlyTheListedCapabilities) {
  auto caps = BuildOciConfig(Spec())["process"]["capabilities"];
  for (const char* set : {"bounding", "effective", "permitted"}) {
    EXPECT_EQ(caps[set], nlohmann::json({"CAP_NET_RAW"})) << set;
  }
  EXPECT_TRUE(caps["ambient"].empty());
  EXPECT_TRUE(caps["inheritable"].empty());
}

TEST(OciConfig, LimitsResources) {
  auto resources = BuildOciConfig(Spec())["linux"]["resources"];
  EXPECT_EQ(resources["memory"]["limit"], 64 << 20);
  EXPECT_EQ(resources["memory"]["swap"], 64 << 20);
  EXPECT_EQ(resources["pids"]["limit"], 32);
  EXPECT_EQ(resources["cpu"]["quota"], 50'000);
}

TEST(OciConfig, MountsRootReadOnlyAndStorageReadWrite) {
  auto config = BuildOciConfig(Spec());
  EXPECT_EQ(config["root"]["path"], "/run/custos/rootfs/a");
  auto mounts = config["mounts"];
  bool data = false, tmp = false;
  for (const auto& mount : mounts) {
    auto options = mount["options"].get<std::vector<std::string>>();
    auto has = [&](const std::string& o) {
      return std::find(options.begin(), options.end(), o) != options.end();
    };
    if (mount["destination"] == "/data") data = has("rw") && has("nodev");
    if (mount["destination"] == "/tmp") tmp = mount["type"] == "tmpfs";
  }
  EXPECT_TRUE(data);
  EXPECT_TRUE(tmp);
}

TEST(OciConfig, SeccompDeniesByDefaultAndLeavesOutEscapes) {
  auto seccomp = BuildOciConfig(Spec())["linux"]["seccomp"];
  EXPECT_EQ(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
  std::set<std::string> allowed;
  for (const auto& rule : seccomp["syscalls"]) {
    if (rule["action"] == "SCMP_ACT_ALLOW" && !rule.contains("args")) {
      for (const auto& name : rule["names"]) allowed.insert(name);
    }
  }
  EXPECT_TRUE(allowed.contains("read"));
  for (const char* denied : {"mount", "ptrace", "init_module", "finit_module", "bpf", "unshare",
                             "setns", "kexec_load", "pivot_root", "keyctl", "io_uring_setup"}) {
    EXPECT_FALSE(allowed.contains(denied)) << denied;
  }
}

}  // namespace
}  // namespace custos
