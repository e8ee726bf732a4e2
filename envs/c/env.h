/* Common contract for every native environment.
 *
 * An env is one header (envs/c/NAME.h) that defines, with NAME's prefix:
 *   NAME_PARAMS[]      ParamSpec table, ended by {0}: the only knobs Python can pass
 *   NAME_EXTRAS[]      ExtraSpec table, ended by {0}: extra arrays the caller
 *                      allocates, exposed to Python by name with shape
 *                      (num_envs, Layout.extra_elems[k]) (e.g. state, maps)
 *   typedef ... NAME;  the state struct, with a `Log log` member
 *   NAME_layout(p, L)  agents per env instance and the observation/action spaces
 *   NAME_init(e, b, err, n)  validate, obtain all memory; 0 on success
 *   NAME_reset(e, seed) / NAME_step(e) / NAME_free(e)
 * all static, NAME being a C identifier (it is also the env's Python name). The
 * engine (envs/_native.c) knows nothing else about an env. Adding one is exactly:
 *   1. envs/c/NAME.h: the definitions above inside an include guard, `#include
 *      "env.h"` first, and after the guard's #endif the line `ENV_KIND(NAME)`
 *      (it registers the env; c/registry.h says why it sits outside the guard);
 *   2. one line in envs/c/registry.h: `#include "NAME.h"`;
 *   3. a rebuild (`python setup.py build_ext --inplace`), with no warning: the
 *      build uses -Wall -Wextra -Werror.
 * envs.make("NAME") and envs.native_names() then have it; nothing in Python
 * changes (tests/envs/test_registration.py builds a tiny env that way).
 * reset/step never allocate, never touch global state and never call rand():
 * every instance owns a seeded Rng, so a seed reproduces a run bit for bit.
 * step() steps every instance in one call and auto-resets finished episodes
 * in the same step (flag set, reward of the last step, observation of the
 * next episode). A time limit sets `truncations`, never `terminals`; on a
 * truncation the episode's last observation is also written to
 * `final_observations`, so the learner can bootstrap from its value exactly.
 * Any int32 in `actions` must be safe: out-of-range values never index memory
 * (callers validate before stepping; envs must still not crash).
 * Actions are Discrete(num_actions), one int32 per agent, unless the layout sets
 * action_dims > 0: then MultiDiscrete(action_nvec), a row of action_dims int32s.
 * Observations are one Box, unless the layout sets obs_parts > 0: then each row
 * is obs_shape[0] uint8 bytes packing those parts (a Dict of Boxes, in order),
 * each at the next offset aligned to its dtype's size, as
 * envs.emulation.layout.layout_of packs a Dict, so the learner's structured
 * encoders read the parts without copies.
 * Agents whose rows are padding (dead, or not played by the learner) have
 * `masks` 0; the learner ignores those rows.
 */
#ifndef APPLIANCE_ENV_H
#define APPLIANCE_ENV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    double value;   /* default */
    double min;
    double max;
    int integer;    /* 1: must be a whole number */
    const char *doc;
} ParamSpec;

typedef struct {
    const char *name;
    char dtype;     /* numpy typecode: 'd' float64, 'f' float32, 'i' int32, 'b' int8, 'B' uint8 */
} ExtraSpec;

#define MAX_OBS_DIMS 3
#define MAX_EXTRAS 8
#define MAX_ACTION_DIMS 8
#define MAX_OBS_PARTS 4

/* One part of a packed observation row: a Box of `dtype` (numpy typecode). */
typedef struct {
    const char *name;
    char dtype;
    int ndim;
    int shape[MAX_OBS_DIMS];
    double low, high;
} ObsPart;

typedef struct {
    int agents_per_env;
    int obs_ndim;
    int obs_shape[MAX_OBS_DIMS];
    char obs_dtype;       /* numpy typecode */
    double obs_low, obs_high;
    int num_actions;      /* Discrete(num_actions); actions are int32 */
    int action_dims;      /* > 0: MultiDiscrete(action_nvec[:action_dims]) instead */
    int action_nvec[MAX_ACTION_DIMS];
    int obs_parts;        /* > 0: rows are uint8 bytes packing obs_part[:obs_parts] */
    ObsPart obs_part[MAX_OBS_PARTS];
    long long extra_elems[MAX_EXTRAS]; /* elements per env instance of each extra */
} Layout;

/* Caller-owned buffers (numpy arrays, possibly in shared memory). */
typedef struct {
    int num_envs;           /* env instances (maps) */
    int num_agents;         /* num_envs * agents_per_env */
    const double *params;   /* values in NAME_PARAMS order */
    void *observations;     /* num_agents * prod(obs_shape) elements */
    const int32_t *actions; /* num_agents rows of max(1, action_dims) */
    float *rewards;
    uint8_t *terminals;
    uint8_t *truncations;
    uint8_t *masks;
    void *final_observations; /* like observations; written for truncated agents */
    void **extras;          /* in NAME_EXTRAS order */
} Buffers;

/* Episode statistics: sums over finished episodes since the last read. */
typedef struct {
    double episodes;
    double episode_return;
    double episode_length;
    double score;
} Log;

static inline void log_episode(Log *log, double ret, double len, double score) {
    log->episodes += 1.0;
    log->episode_return += ret;
    log->episode_length += len;
    log->score += score;
}

/* ---- RNG: splitmix64 for seeding, xoshiro-style xorshift64* per instance ---- */
typedef struct { uint64_t s; } Rng;

static inline uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Seeds instance `index` of a vector from one user seed: independent streams. */
static inline void rng_seed(Rng *r, uint64_t seed, uint64_t index) {
    uint64_t x = seed * 0xD1B54A32D192ED03ULL + index;
    r->s = splitmix64(&x);
    if (r->s == 0) r->s = 0x2545F4914F6CDD1DULL;
}

static inline uint64_t rng_next(Rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1) with 53 bits. */
static inline double rng_double(Rng *r) {
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < 2^-32). */
static inline uint32_t rng_below(Rng *r, uint32_t n) {
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

#define ENV_ERR(err, n, ...) (snprintf((err), (n), __VA_ARGS__), -1)

/* The registration line ending every env header: nothing here; the engine defines
 * it before reading c/registry.h. */
#ifndef ENV_KIND
#define ENV_KIND(NAME)
#endif

#endif
