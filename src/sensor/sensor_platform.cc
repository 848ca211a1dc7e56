#include "sensor/sensor_platform.h"

namespace custos {

SensorPlatform::SensorPlatform(const SensorConfig& config)
    : sensor(config),
      runtime(config.runtime, config.state_dir + "/runtime"),
      uid_slots(config.data_root + "/uid-slots.json", config.uid_base),
      hub_netns("/run/netns/custos-" + config.name) {
  sensor.instruments.clear();
}

}  // namespace custos
