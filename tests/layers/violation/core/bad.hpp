// A core file that reaches for an adapter.
#pragma once
#include <vector>

#include "core/ok.hpp"
#include "io/http/http.hpp"
