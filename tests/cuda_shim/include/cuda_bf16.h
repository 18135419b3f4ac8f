// Stand-in for cuda_bf16.h (host shim): bfloat16 storage and its conversions
// (round to nearest even, NaN kept quiet).
#pragma once
#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t x = (uint32_t)h.bits << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  __nv_bfloat16 h;
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    h.bits = (uint16_t)((x >> 16) | 0x40u);
    return h;
  }
  x += 0x7fffu + ((x >> 16) & 1u);
  h.bits = (uint16_t)(x >> 16);
  return h;
}
