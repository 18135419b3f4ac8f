// Stand-in for cuda_bf16.h (host shim): bfloat16 storage and its conversions
// (round to nearest even, NaN kept quiet).
#pragma once
#include <stdint.h>

#include "nat_shim.h"

struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 h) { return nat_shim_bits<float>((uint32_t)h.bits << 16); }

inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t x = nat_shim_bits<uint32_t>(f);
  __nv_bfloat16 h;
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    h.bits = (uint16_t)((x >> 16) | 0x40u);
    return h;
  }
  x += 0x7fffu + ((x >> 16) & 1u);
  h.bits = (uint16_t)(x >> 16);
  return h;
}
