// catch.h: include Catch2 whichever major version configure found (2.13 or 3).
#pragma once
#include "config.h"
#ifdef HAVE_CATCH2_V3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
