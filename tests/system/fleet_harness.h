// A real custos-fleetd for system tests, in the fleet host of a NatNetwork:
// its folder made by `custos fleet init`, the server started under
// `setpriv --pdeathsig TERM nsenter --net=<fleet host>`, and the `custos`
// CLI run against it as an operator would. The folder is removed at the end.
#pragma once

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/system/harness.h"

namespace custos::testing {

class FleetUnderTest {
 public:
  FleetUnderTest(const TestNetns& host, std::string address);
  ~FleetUnderTest();
  FleetUnderTest(const FleetUnderTest&) = delete;
  FleetUnderTest& operator=(const FleetUnderTest&) = delete;

  // Starts fleetd and waits until its API answers.
  void Start();
  void Stop();
  // SIGKILL, as a crash would.
  void Kill();

  std::string ApiAddress() const { return address_ + ":8443"; }
  const std::string& dir() const { return dir_; }
  // `custos ARGS --fleet-dir DIR --api ADDRESS` in the fleet host; the
  // command's output, or a test failure when it exits non-zero.
  std::string Cli(std::vector<std::string> args) const;
  // The same, returning the exit code and the output without failing.
  std::pair<int, std::string> TryCli(std::vector<std::string> args) const;
  std::string CreateToken(const std::string& tenant, const std::string& ttl = "1h") const;
  // Every stored event of `sensor` with `event_type`, paging through the API.
  std::vector<nlohmann::json> Events(const std::string& sensor, const std::string& type) const;
  // An API request with curl, as any HTTP client would send it; returns
  // {status, body}. `token` empty: no Authorization header.
  std::pair<int, std::string> Api(const std::string& method, const std::string& path,
                                  const std::string& body, const std::string& token) const;
  std::string AdminToken() const;
  std::string Log() const;

 private:
  const TestNetns& host_;
  std::string address_;
  std::string dir_;
  pid_t pid_ = -1;
};

// Enrolls the sensor host's sensord identity at <sensor root>/identity and
// returns the sensor id.
std::string EnrollSensor(const SensorUnderTest& sensor, const FleetUnderTest& fleet,
                         const std::string& token);

}  // namespace custos::testing
