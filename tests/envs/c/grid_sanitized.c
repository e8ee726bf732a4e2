/* Drives envs/c/grid.h with no Python, for AddressSanitizer and UBSan:
 * odd sizes, every vision radius class, wild int32 actions, many
 * regenerations. Exits non-zero on any broken invariant. */
#include <assert.h>
#include "grid.h"

static int run(const double *p, int num_envs, int steps, uint64_t seed) {
    Layout L;
    memset(&L, 0, sizeof L);
    grid_layout(p, &L);
    int A = num_envs * L.agents_per_env, S = L.obs_shape[0] * L.obs_shape[1];
    int8_t *obs = malloc((size_t)A * S), *fobs = malloc((size_t)A * S);
    int32_t *act = malloc(4 * (size_t)A);
    float *rew = malloc(4 * (size_t)A);
    uint8_t *term = malloc(A), *trunc = malloc(A), *mask = malloc(A);
    int8_t *maps = malloc((size_t)num_envs * L.extra_elems[0]);
    int32_t *pos = malloc(4 * (size_t)num_envs * L.extra_elems[1]);
    void *extras[2] = {maps, pos};
    Buffers b = {num_envs, A, p, obs, act, rew, term, trunc, mask, fobs, extras};
    grid *e = calloc(1, sizeof(grid));
    char err[256];
    int rc = grid_init(e, &b, err, sizeof err);
    if (rc) {
        printf("error: %s\n", err);
    } else {
        grid_reset(e, seed);
        Rng r;
        rng_seed(&r, seed, 99);
        for (int s = 0; s < steps; s++) {
            for (int i = 0; i < A; i++) act[i] = (int32_t)(rng_next(&r) % 9) - 2;
            act[0] = s % 2 ? INT32_MIN : INT32_MAX;
            grid_step(e);
            for (int i = 0; i < A; i++) {
                const int8_t *map = maps + (size_t)(i / L.agents_per_env) * L.extra_elems[0];
                assert(map[pos[i]] == GRID_AGENT);
                assert(!(term[i] && trunc[i]));
                assert(obs[(size_t)i * S + S / 2] == GRID_AGENT);
            }
        }
        printf("ok %.0f episodes\n", e->log.episodes);
        grid_free(e);
    }
    free(obs); free(fobs); free(act); free(rew); free(term); free(trunc); free(mask);
    free(maps); free(pos); free(e);
    return rc;
}

int main(void) {
    /* width height agents goals maze room_size vision max_steps goal_reward step_reward */
    static const double cases[][10] = {
        {16, 16, 4, 1, 0, 4, 3, 64, 1, 0},   {21, 9, 8, 3, 1, 4, 2, 50, 1, -0.01},
        {4, 3, 1, 1, 0, 1, 1, 5, 1, 0},      {3, 5, 1, 1, 1, 1, 15, 7, 1, 0},
        {40, 7, 30, 5, 0, 2, 5, 33, 1, 0},   {8, 9, 1, 1, 1, 1, 4, 20, 1, 0},
        {7, 7, 16, 1, 1, 1, 3, 9, 1, 0},     {5, 5, 100, 1, 0, 4, 3, 33, 1, 0},
    };
    int failed = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) failed += run(cases[k], 3, 600, k) != 0;
    return failed == 1 ? 0 : 1; /* exactly the last case (too many agents) is refused */
}
