#include "sandbox/rootfs.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace custos {
namespace {

TEST(ParseLddOutput, TakesLibraryPathsAndTheLoader) {
  std::string output =
      "\tlinux-vdso.so.1 (0x00007ffd)\n"
      "\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f)\n"
      "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n"
      "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
  EXPECT_EQ(
      ParseLddOutput(output),
      (std::vector<std::string>{"/lib/x86_64-linux-gnu/libstdc++.so.6",
                                "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}));
}

TEST(RootfsResolver, FindsTheLibrariesOfARealBinary) {
  RootfsResolver resolver;
  auto files = resolver.FilesFor("/bin/ls");
  ASSERT_TRUE(files.ok()) << files.error().message;
  EXPECT_EQ(files->front(), "/bin/ls");
  bool libc = false;
  for (const auto& file : *files) libc |= file.find("libc.so") != std::string::npos;
  EXPECT_TRUE(libc);
}

TEST(RootfsResolver, RefusesWhatIsNotAnExecutable) {
  RootfsResolver resolver;
  EXPECT_FALSE(resolver.FilesFor("/etc/os-release").ok());  // not executable
  EXPECT_FALSE(resolver.FilesFor("/etc").ok());
  EXPECT_FALSE(resolver.FilesFor("/nonexistent").ok());
}

}  // namespace
}  // namespace custos

namespace custos {
namespace {

TEST(AssembleRootfs, CopiesFilesAndRefusesPlatformPaths) {
  char pattern[] = "/tmp/custos-rootfs-XXXXXX";
  std::string root = ::mkdtemp(pattern);
  ASSERT_TRUE(AssembleRootfs({{"/bin/ls", ExecutableInRootfs("/bin/ls")}}, root).ok());
  EXPECT_TRUE(std::filesystem::exists(root + "/instrument/ls"));
  for (const char* reserved : {"/tmp/x", "/data/x", "/proc/x", "/run/custos/bus.sock"}) {
    auto refused = AssembleRootfs({{"/bin/ls", reserved}}, root);
    ASSERT_FALSE(refused.ok()) << reserved;
    EXPECT_NE(refused.error().message.find("platform's mounts"), std::string::npos);
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace custos
