// Errors as values: the SDK's public Result type, used inside Custos too.
#pragma once

#include "custos/result.h"
