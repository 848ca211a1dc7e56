#include "sandbox/rootfs.h"

#include <gtest/gtest.h>

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
