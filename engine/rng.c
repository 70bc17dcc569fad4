/*
 * rng.c - the engine's only source of randomness: xoshiro256** seeded through
 * splitmix64. The state is four words of plain data, so a checkpoint saves it
 * and a resumed run continues the same stream.
 */
#include <math.h>

#include "internal.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void nn_rng_seed(nn_rng *r, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t nn_rng_next(nn_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

float nn_rng_uniform(nn_rng *r)
{
	return (float)(nn_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

uint64_t nn_rng_below(nn_rng *r, uint64_t n)
{
	/* Reject the low values that would make r % n favour small results:
	 * 2^64 mod n of them. */
	uint64_t threshold = (0 - n) % n;

	for (;;) {
		uint64_t x = nn_rng_next(r);
		if (x >= threshold)
			return x % n;
	}
}

float nn_rng_normal(nn_rng *r)
{
	/* u1 in (0, 1] so the log is finite; u2 in [0, 1). */
	double u1 = ((double)(nn_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
	double u2 = (double)(nn_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);

	return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
