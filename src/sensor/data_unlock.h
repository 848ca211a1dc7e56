// Keeps a sensor with an encrypted data root locked until its fleet hands
// over the data key. A thread of its own asks the fleet (FetchDataKeys) with
// backoff; the event loop then opens the EncryptedStore with the key
// (mounting the volume: commands whose exit only that thread may reap),
// re-encrypts under a pending key first if the fleet ordered a re-key (and
// confirms it), and starts the instruments. Nothing of the key is written anywhere; the store keeps
// it in locked memory. StatusJson is thread-safe; the rest belongs to the
// event loop's thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "sensor/data_key_client.h"
#include "sensor/event_loop.h"
#include "sensor/fleet_identity.h"
#include "sensor/sensor_config.h"
#include "storage/encrypted_store.h"

namespace custos::sensor {

class DataUnlocker {
 public:
  using Unlocked = std::function<void(std::unique_ptr<storage::EncryptedStore>)>;
  DataUnlocker(FleetConfig fleet, std::string data_root, EventLoop& loop, Unlocked on_unlocked);
  ~DataUnlocker();
  DataUnlocker(const DataUnlocker&) = delete;
  DataUnlocker& operator=(const DataUnlocker&) = delete;

  void Start();
  // {"state": "locked, waiting for fleet" | "re-keying" | "unlocked", "attempts", "last_error",
  //  "key_version"}
  nlohmann::json StatusJson() const;

 private:
  void Run();
  void Poll();
  void Note(const std::string& state, const std::string& error);

  FleetConfig fleet_;
  std::string data_root_;
  EventLoop& loop_;
  Unlocked on_unlocked_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::string state_ = "locked, waiting for fleet";
  std::string last_error_;
  std::uint64_t attempts_ = 0;
  std::uint64_t key_version_ = 0;
  // Handed from the thread to the loop.
  std::optional<DataKeys> fetched_;
  std::optional<FleetIdentity> identity_;
};

}  // namespace custos::sensor
