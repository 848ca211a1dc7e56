// What every instrument of one sensor shares: the sensor-level settings, the
// OCI runtime, the library resolver, uid ranges and the hub namespace that
// holds the host ends of the passive instruments' mirror links.
#pragma once

#include <array>
#include <string>

#include "bus/broker.h"
#include "capture/packet_ring.h"
#include "sandbox/oci_runtime.h"
#include "sandbox/rootfs.h"
#include "sensor/event_loop.h"
#include "sensor/sensor_config.h"
#include "sensor/uid_slots.h"
#include "storage/encrypted_store.h"

namespace custos {

struct SensorPlatform {
  explicit SensorPlatform(const SensorConfig& config);

  std::string RuntimeRoot() const { return sensor.state_dir + "/runtime"; }
  std::string BundleDir(const std::string& instrument) const {
    return sensor.state_dir + "/bundles/" + instrument;
  }
  std::string RootfsDir(const std::string& instrument) const {
    return sensor.state_dir + "/rootfs/" + instrument;
  }
  std::string NetnsPin(const std::string& instrument) const {
    return sensor.state_dir + "/netns/" + instrument;
  }
  std::string LogFile(const std::string& instrument) const {
    return sensor.log_dir + "/" + instrument + ".log";
  }
  std::string ContainerId(const std::string& instrument) const {
    return sensor.name + "-" + instrument;
  }
  std::string CgroupPath(const std::string& instrument) const {
    return CgroupParent() + "/" + instrument;
  }
  std::string CgroupParent() const { return "/custos/" + sensor.name; }
  std::string HubNetnsName() const { return "custos-" + sensor.name; }
  std::string AdminSocket() const { return sensor.state_dir + "/sensord.sock"; }
  // Holds the instrument's bus socket; mounted read-only at /run/custos/bus.
  std::string BusDir(const std::string& instrument) const {
    return sensor.state_dir + "/bus/" + instrument;
  }
  // The instrument's own folder for its UI socket; mounted at /run/custos/ui.
  // The instrument controls it, so whoever connects from the host must not
  // follow symlinks in it (the fleet's proxy, later).
  std::string UiDir(const std::string& instrument) const {
    return sensor.state_dir + "/ui/" + instrument;
  }
  // What the capture engine is told about its consumers (which instrument a
  // tap end or ring slot feeds, and its filter); mounted read-only in the
  // engine at /run/custos/taps.
  std::string TapDir() const { return sensor.state_dir + "/taps"; }

  SensorConfig sensor;  // sensor-level fields; `instruments` is not used here
  OciRuntime runtime;
  RootfsResolver resolver;
  UidSlots uid_slots;
  bus::Broker* broker = nullptr;  // owned by the Supervisor
  EventLoop* loop = nullptr;      // sensord's, for the instruments' log pipes
  // Where tap ends of mirror links go: the capture engine's namespace while
  // it runs, the sensor's own hub namespace otherwise.
  std::string hub_netns;
  // The running capture engine's process, for ring instruments; -1 if none.
  pid_t capture_pid = -1;
  // The encrypted data root, once the fleet's data key opened it; null when
  // the sensor has no encrypted volume. Owned by sensord's main.
  storage::EncryptedStore* store = nullptr;
  // True while the sensor has an encrypted data root that is not open yet:
  // no instrument may start and write to the bare mountpoint.
  bool storage_locked = false;
  // Which instrument holds each cursor slot of the engine's ring ("" = free).
  std::array<std::string, capture::kRingConsumers> ring_slots;
};

}  // namespace custos
