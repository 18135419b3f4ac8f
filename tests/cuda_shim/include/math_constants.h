// Stand-in for CUDA's math_constants.h (host shim): the constants the kernels use.
#pragma once
#include <math.h>
#define CUDART_INF_F HUGE_VALF
#define CUDART_INF HUGE_VAL
