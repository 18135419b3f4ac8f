// Stand-in for cuda_fp16.h (host shim): IEEE binary16 storage and the two
// conversions the kernels use, rounding to nearest even like the device ones.
#pragma once
#include <stdint.h>

#include "nat_shim.h"

struct __half {
  uint16_t bits;
};

inline float __half2float(__half h) {
  const uint32_t sign = (uint32_t)(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu, man = h.bits & 0x3ffu, out;
  if (exp == 0x1f) {
    out = sign | 0x7f800000u | (man << 13);  // inf / NaN
  } else if (exp == 0) {
    if (man == 0) {
      out = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400u) == 0);
      out = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else {
    out = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return nat_shim_bits<float>(out);
}

inline __half __float2half(float f) {
  const uint32_t x = nat_shim_bits<uint32_t>(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  __half h;
  if (abs >= 0x7f800000u) {  // inf / NaN
    h.bits = sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u);
    return h;
  }
  if (abs >= 0x477ff000u) {  // rounds to >= 65520: overflow to inf
    h.bits = sign | 0x7c00u;
    return h;
  }
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (abs < 0x33000000u) {  // < 2^-25 rounds to 0
      h.bits = sign;
      return h;
    }
    // value / 2^-24 = man24 >> (126 - exponent), rounded to nearest even
    const uint32_t man = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - (int)(abs >> 23);  // 14 .. 24
    const uint32_t rem = man & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    uint32_t r = man >> shift;
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    h.bits = sign | (uint16_t)r;
    return h;
  }
  uint32_t r = ((abs >> 13) - ((127 - 15) << 10));
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  h.bits = sign | (uint16_t)r;
  return h;
}
