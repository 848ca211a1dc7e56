#include "sensor/log_pump.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "common/files.h"

namespace custos {
namespace {

namespace fs = std::filesystem;

class LogPumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/custos-logpump-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto loop = EventLoop::Create({});
    ASSERT_TRUE(loop.ok()) << loop.error().message;
    loop_ = std::move(*loop);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs the loop until `done` or 10 s.
  void RunUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::function<void()> check = [&] {
      if (done() || std::chrono::steady_clock::now() > deadline) return loop_->Quit();
      loop_->After(std::chrono::milliseconds(5), check);
    };
    loop_->After(std::chrono::milliseconds(0), check);
    loop_->Run();
  }

  std::string dir_;
  std::unique_ptr<EventLoop> loop_;
};

TEST_F(LogPumpTest, CopiesWhatTheWriterSaysIntoTheFile) {
  const std::string path = dir_ + "/a.log";
  auto pump = LogPump::Open(*loop_, path);
  ASSERT_TRUE(pump.ok()) << pump.error().message;
  ASSERT_EQ(::write((*pump)->write_end(), "hello\n", 6), 6);
  (*pump)->CloseWriteEnd();
  RunUntil([&] { return ReadFile(path).value_or("") == "hello\n"; });
  EXPECT_EQ(ReadFile(path).value_or(""), "hello\n");
}

TEST_F(LogPumpTest, AnEndlessWriterFillsAtMostTwoFiles) {
  const std::string path = dir_ + "/spam.log";
  constexpr std::uint64_t kMax = 1 << 20;
  auto pump = LogPump::Open(*loop_, path, kMax);
  ASSERT_TRUE(pump.ok()) << pump.error().message;
  // A child writes 20 MiB as fast as the pipe takes it, then exits.
  pid_t child = ::fork();
  if (child == 0) {
    std::string line(1023, 'x');
    line += '\n';
    for (int i = 0; i < 20 * 1024; ++i) {
      if (::write((*pump)->write_end(), line.data(), line.size()) < 0) ::_exit(1);
    }
    ::_exit(0);
  }
  (*pump)->CloseWriteEnd();
  int status = -1;
  RunUntil([&] { return ::waitpid(child, &status, WNOHANG) == child; });
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  (*pump)->Drain();
  EXPECT_GE((*pump)->rotations(), 18u);
  // Each file ends at the first chunk past the bound (64 KiB reads) plus a note.
  EXPECT_LE(fs::file_size(path), kMax + 64 * 1024 + 200);
  EXPECT_LE(fs::file_size(path + ".1"), kMax + 64 * 1024 + 200);
  EXPECT_FALSE(fs::exists(path + ".2"));
  EXPECT_NE(ReadFile(path).value_or("").find("[custos] log continued here"), std::string::npos);
}

TEST_F(LogPumpTest, KeepsAppendingToAnExistingFile) {
  const std::string path = dir_ + "/b.log";
  std::ofstream(path) << "before\n";
  auto pump = LogPump::Open(*loop_, path);
  ASSERT_TRUE(pump.ok());
  ASSERT_EQ(::write((*pump)->write_end(), "after\n", 6), 6);
  (*pump)->CloseWriteEnd();
  (*pump)->Drain();
  EXPECT_EQ(ReadFile(path).value_or(""), "before\nafter\n");
}

TEST_F(LogPumpTest, RefusesASymlinkedLogFile) {
  const std::string path = dir_ + "/c.log";
  fs::create_symlink("/etc/passwd", path);
  auto pump = LogPump::Open(*loop_, path);
  ASSERT_FALSE(pump.ok());
  EXPECT_NE(pump.error().message.find(path), std::string::npos) << pump.error().message;
}

}  // namespace
}  // namespace custos
