#pragma once
#include <sodium.h>

#include "base/ok.hpp"
