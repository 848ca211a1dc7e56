#include "sensor/data_unlock.h"

#include "common/log.h"
#include "sensor/data_key_client.h"
#include "sensor/fleet_identity.h"

namespace custos::sensor {

DataUnlocker::DataUnlocker(FleetConfig fleet, std::string data_root, EventLoop& loop,
                           Unlocked on_unlocked)
    : fleet_(std::move(fleet)),
      data_root_(std::move(data_root)),
      loop_(loop),
      on_unlocked_(std::move(on_unlocked)) {}

DataUnlocker::~DataUnlocker() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DataUnlocker::Start() {
  thread_ = std::thread([this] { Run(); });
  loop_.After(std::chrono::milliseconds(200), [this] { Poll(); });
}

void DataUnlocker::Note(const std::string& state, const std::string& error) {
  std::lock_guard lock(mutex_);
  state_ = state;
  last_error_ = error;
}

void DataUnlocker::Run() {
  auto backoff = std::chrono::seconds(1);
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
      ++attempts_;
    }
    std::string error;
    auto identity = LoadFleetIdentity(fleet_.identity);
    if (!identity) {
      error = identity.error().message;
    } else if (auto keys = FetchDataKeys(*identity); !keys) {
      error = keys.error().message;
    } else {
      std::lock_guard lock(mutex_);
      fetched_.emplace(std::move(*keys));
      identity_.emplace(std::move(*identity));
      return;
    }
    spdlog::warn("data root locked, waiting for fleet: {}", error);
    std::unique_lock lock(mutex_);
    last_error_ = error;
    wake_.wait_for(lock, backoff, [this] { return stop_; });
    backoff = std::min(backoff * 2, std::chrono::seconds(30));
  }
}

// On the event loop: mounting runs commands, and only this thread may wait
// for children (sensord reaps the others as their subreaper).
void DataUnlocker::Poll() {
  std::optional<DataKeys> keys;
  std::optional<FleetIdentity> identity;
  {
    std::lock_guard lock(mutex_);
    keys = std::move(fetched_);
    identity = std::move(identity_);
    fetched_.reset();
    identity_.reset();
  }
  if (!keys) {
    loop_.After(std::chrono::milliseconds(200), [this] { Poll(); });
    return;
  }
  if (thread_.joinable()) thread_.join();
  storage::StoreOptions options{fleet_.data_volume, data_root_, fleet_.data_volume_bytes};
  std::uint64_t version = keys->version;
  std::string error;
  auto store = storage::EncryptedStore::Open(options, std::move(keys->current));
  if (!store) {
    error = store.error().message;
  } else if (keys->pending) {
    Note("re-keying", "");
    spdlog::info("re-encrypting the data root under data key version {}", keys->pending_version);
    if (auto rotated = (*store)->RotateDataKey(std::move(*keys->pending)); !rotated) {
      error = "re-key: " + rotated.error().message;
    } else {
      // The data is under the new key from here on; an unconfirmed re-key is
      // finished at the next start (the rotation skips what is done).
      version = keys->pending_version;
      if (auto confirmed = ConfirmDataKey(*identity, keys->pending_version); !confirmed) {
        spdlog::warn("re-key done but not confirmed: {}", confirmed.error().message);
      }
    }
  }
  if (!error.empty()) {
    spdlog::error("data root stays locked: {}", error);
    Note("locked, waiting for fleet", error);
    thread_ = std::thread([this] { Run(); });
    loop_.After(std::chrono::seconds(5), [this] { Poll(); });
    return;
  }
  {
    std::lock_guard lock(mutex_);
    state_ = "unlocked";
    last_error_.clear();
    key_version_ = version;
  }
  on_unlocked_(std::move(*store));
}

nlohmann::json DataUnlocker::StatusJson() const {
  std::lock_guard lock(mutex_);
  return {{"state", state_},
          {"attempts", attempts_},
          {"last_error", last_error_},
          {"key_version", key_version_}};
}

}  // namespace custos::sensor
