// rng.h — counter-based random numbers: every draw is a pure function of (key, counter),
// so dropout masks can be regenerated in backward and a resumed run replays exactly.
#pragma once
#include <cmath>    // sqrt, log, cos
#include <cstdint>  // uint64_t

// PARATRAIN_HD marks the functions the CUDA kernels call too (dropout masks must match bit for bit).
#ifndef PARATRAIN_HD
#if defined(__CUDACC__)
#define PARATRAIN_HD __host__ __device__
#else
#define PARATRAIN_HD
#endif
#endif

namespace paratrain {

// splitmix64 finaliser: a strong 64-bit mixer (Steele et al.); cheap and stateless.
PARATRAIN_HD inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A stream key from (seed, step, site): site identifies the layer and the place in it.
PARATRAIN_HD inline uint64_t rng_key(uint64_t seed, uint64_t step, uint64_t site) {
  return mix64(mix64(mix64(seed) ^ step) ^ (site * 0xD6E8FEB86659FD93ull));
}

// Uniform float in [0, 1) for element `index` of the stream `key` (24 random bits).
PARATRAIN_HD inline float rng_uniform(uint64_t key, uint64_t index) {
  return static_cast<float>(mix64(key ^ (index * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0f / 16777216.0f);
}

// Uniform float in the open interval (0, 1): the 24 bits of rng_uniform, centred in their cell
// (a logarithm of it is always finite: Gumbel noise, sampling).
PARATRAIN_HD inline float rng_open_uniform(uint64_t key, uint64_t index) {
  return (static_cast<float>(mix64(key ^ (index * 0x9E3779B97F4A7C15ull)) >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

// Standard normal via Box-Muller from two 53-bit counter draws (used for weight init; host only).
inline double rng_normal(uint64_t key, uint64_t index) {
  const uint64_t r1 = mix64(key ^ (index * 0x9E3779B97F4A7C15ull));
  const uint64_t r2 = mix64(r1 ^ 0x94D049BB133111EBull);
  const double u1 = static_cast<double>((r1 >> 11) + 1) * (1.0 / 9007199254740993.0);  // (0, 1]
  const double u2 = static_cast<double>(r2 >> 11) * (1.0 / 9007199254740992.0);        // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace paratrain
