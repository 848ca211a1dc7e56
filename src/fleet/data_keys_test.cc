#include "fleet/data_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/test_authority.h"

namespace custos::fleet {
namespace {

using crypto::testing::Must;
using crypto::testing::TempDir;

TEST(DataKeysTest, WrapsAndUnwrapsBoundToTheSensor) {
  KeyBytes master = Must(RandomKey());
  KeyBytes key = Must(RandomKey());
  std::string wrapped = Must(WrapDataKey(master, key, "sensor-1"));
  EXPECT_EQ(wrapped.rfind("v1:", 0), 0u);
  EXPECT_EQ(wrapped.find(std::string(reinterpret_cast<const char*>(key.data()), 8)),
            std::string::npos);
  EXPECT_TRUE(Must(UnwrapDataKey(master, wrapped, "sensor-1")) == key);
  // A fresh nonce each time: the same key wraps differently.
  EXPECT_NE(Must(WrapDataKey(master, key, "sensor-1")), wrapped);

  EXPECT_FALSE(UnwrapDataKey(master, wrapped, "sensor-2").ok());
  EXPECT_FALSE(UnwrapDataKey(Must(RandomKey()), wrapped, "sensor-1").ok());
  for (std::size_t i = 3; i < wrapped.size(); i += 7) {
    std::string damaged = wrapped;
    damaged[i] = damaged[i] == '0' ? '1' : '0';
    EXPECT_FALSE(UnwrapDataKey(master, damaged, "sensor-1").ok()) << i;
  }
  EXPECT_FALSE(UnwrapDataKey(master, wrapped.substr(0, wrapped.size() - 2), "sensor-1").ok());
  EXPECT_FALSE(UnwrapDataKey(master, "v2:" + wrapped.substr(3), "sensor-1").ok());
}

TEST(DataKeysTest, MasterKeyFileIsPrivateAndExact) {
  TempDir dir;
  auto path = dir.path() / "master.key";
  Must(CreateMasterKeyFile(path));
  struct stat status {};
  ASSERT_EQ(::stat(path.c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 0777, 0600u);
  EXPECT_EQ(status.st_size, 32);
  KeyBytes first = Must(ReadMasterKeyFile(path));
  EXPECT_TRUE(Must(ReadMasterKeyFile(path)) == first);
  EXPECT_FALSE(CreateMasterKeyFile(path).ok());  // never replaced

  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  EXPECT_FALSE(ReadMasterKeyFile(path).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(::truncate(path.c_str(), 31), 0);
  EXPECT_FALSE(ReadMasterKeyFile(path).ok());
  std::filesystem::create_symlink(path, dir.path() / "link.key");
  EXPECT_FALSE(ReadMasterKeyFile(dir.path() / "link.key").ok());
}

TEST(DataKeysTest, ServiceRefusesRevokedAndUnknownSensors) {
  TempDir dir;
  auto store = Must(OpenSqliteFleetStore(dir.path() / "fleet.db"));
  DataKeyService keys(*store, Must(RandomKey()));
  auto now = std::chrono::system_clock::now();
  Must(store->AddEnrollmentToken("t1", "acme", now + std::chrono::hours(1)));
  Must(store->AddEnrollmentToken("t2", "acme", now + std::chrono::hours(1)));
  NewSensor one{"s1", "0A01", "fp1"};
  one.wrapped_data_key = Must(keys.NewWrappedKey("s1"));
  Must(store->EnrollSensor("t1", one));
  NewSensor two{"s2", "0A02", "fp2"};
  two.wrapped_data_key = Must(keys.NewWrappedKey("s2"));
  Must(store->EnrollSensor("t2", two));

  KeyBytes key_one = Must(keys.KeyFor("s1"));
  EXPECT_TRUE(Must(keys.KeyFor("s1")) == key_one);
  EXPECT_FALSE(Must(keys.KeyFor("s2")) == key_one);
  auto unknown = keys.KeyFor("nobody");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("unknown"), std::string::npos);

  Must(store->RevokeSensor("s1"));
  auto revoked = keys.KeyFor("s1");
  ASSERT_FALSE(revoked.ok());
  EXPECT_NE(revoked.error().message.find("revoked"), std::string::npos);
  EXPECT_FALSE(Must(store->WrappedDataKey("s1")).has_value());
  EXPECT_TRUE(keys.KeyFor("s2").ok());
  // Another fleet's master key cannot open this fleet's keys.
  DataKeyService stranger(*store, Must(RandomKey()));
  EXPECT_FALSE(stranger.KeyFor("s2").ok());
}

}  // namespace
}  // namespace custos::fleet
