// sensord's side of the capture ring. The capture engine creates the ring
// memfd and one cursor memfd per consumer slot; sensord takes the ring and a
// free cursor out of the running engine with pidfd_getfd(2), checks their
// seals itself (so an engine cannot hand out a ring that consumers could
// write), clears the cursor page and passes both to a `ring` instrument's
// container as descriptors 3 and 4. Used from the event loop thread only.
#pragma once

#include <sys/types.h>

#include <chrono>

#include "capture/packet_ring.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace custos {

struct RingGrant {
  int slot = -1;
  UniqueFd ring;
  UniqueFd cursor;
  capture::CursorView view;  // sensord's own mapping, for status
};

// Waits up to `wait` for the engine (pid `engine`) to have created and sealed
// its ring, then takes the ring and the cursor of `slot`.
Result<RingGrant> GrantRing(pid_t engine, int slot, std::chrono::milliseconds wait);

}  // namespace custos
