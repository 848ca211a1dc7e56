// The default-deny seccomp profile every instrument runs under, as the
// `linux.seccomp` object of an OCI config. Anything not listed fails with
// EPERM; see docs/security.md for what is left out and why.
#pragma once

#include <nlohmann/json.hpp>

namespace custos {

// `sockets` false also refuses socket() and socketpair(): for an instrument
// that reads the capture ring and needs no network at all.
nlohmann::json InstrumentSeccompProfile(bool sockets = true);

}  // namespace custos
