/* CartPole with the dynamics, constants, thresholds, initial-state
 * distribution, reward and time limit of Gymnasium's CartPole-v1 (Euler
 * integration, reward 1 on every step including the failing one, truncation
 * after max_steps). The physical state lives in the caller-owned float64
 * extra array `state` (num_envs, 4) and the steps taken in the current
 * episode in the int32 extra `steps` (num_envs, 1), so tests can set both
 * directly (e.g. to reach the time limit from a chosen state).
 */
#ifndef APPLIANCE_CARTPOLE_H
#define APPLIANCE_CARTPOLE_H

#include <math.h>
#include "env.h"

#define CP_GRAVITY 9.8
#define CP_MASSCART 1.0
#define CP_MASSPOLE 0.1
#define CP_TOTAL_MASS (CP_MASSPOLE + CP_MASSCART)
#define CP_LENGTH 0.5
#define CP_POLEMASS_LENGTH (CP_MASSPOLE * CP_LENGTH)
#define CP_FORCE_MAG 10.0
#define CP_TAU 0.02
#define CP_THETA_THRESHOLD (12.0 * 2.0 * 3.14159265358979323846 / 360.0)
#define CP_X_THRESHOLD 2.4

static const ParamSpec cartpole_PARAMS[] = {
    {"max_steps", 500, 1, 1e9, 1, "steps before an episode is truncated (CartPole-v1: 500)"},
    {0},
};
static const ExtraSpec cartpole_EXTRAS[] = {
    {"state", 'd'},
    {"steps", 'i'},
    {0},
};

typedef struct {
    int n;
    int max_steps;
    double *state;    /* (n, 4): x, x_dot, theta, theta_dot */
    float *obs;       /* (n, 4) */
    float *final_obs; /* (n, 4): last observation of a truncated episode */
    const int32_t *actions;
    float *rewards;
    uint8_t *terminals, *truncations, *masks;
    int32_t *steps;   /* (n, 1): steps taken in the current episode */
    Rng *rng;
    Log log;
} cartpole;

static void cartpole_layout(const double *p, Layout *L) {
    (void)p;
    L->agents_per_env = 1;
    L->obs_ndim = 1;
    L->obs_shape[0] = 4;
    L->obs_dtype = 'f';
    L->obs_low = -INFINITY;
    L->obs_high = INFINITY;
    L->num_actions = 2;
    L->extra_elems[0] = 4;
    L->extra_elems[1] = 1;
}

static void cartpole_free(cartpole *e) {
    free(e->rng);
    e->rng = NULL;
}

static int cartpole_init(cartpole *e, const Buffers *b, char *err, size_t n) {
    e->n = b->num_agents;
    e->max_steps = (int)b->params[0];
    e->state = (double *)b->extras[0];
    e->obs = (float *)b->observations;
    e->actions = b->actions;
    e->rewards = b->rewards;
    e->terminals = b->terminals;
    e->truncations = b->truncations;
    e->masks = b->masks;
    e->final_obs = (float *)b->final_observations;
    e->steps = (int32_t *)b->extras[1];
    e->rng = (Rng *)calloc((size_t)e->n, sizeof(Rng));
    if (!e->rng) {
        cartpole_free(e);
        return ENV_ERR(err, n, "cartpole: out of memory for num_envs=%d", e->n);
    }
    memset(&e->log, 0, sizeof(Log));
    return 0;
}

static inline void cartpole_write_obs(cartpole *e, float *obs, int i) {
    const double *s = e->state + 4 * (size_t)i;
    float *o = obs + 4 * (size_t)i;
    o[0] = (float)s[0];
    o[1] = (float)s[1];
    o[2] = (float)s[2];
    o[3] = (float)s[3];
}

static inline void cartpole_reset_one(cartpole *e, int i) {
    double *s = e->state + 4 * (size_t)i;
    for (int k = 0; k < 4; k++) s[k] = rng_double(&e->rng[i]) * 0.1 - 0.05;
    e->steps[i] = 0;
    cartpole_write_obs(e, e->obs, i);
}

static void cartpole_reset(cartpole *e, uint64_t seed) {
    for (int i = 0; i < e->n; i++) {
        rng_seed(&e->rng[i], seed, (uint64_t)i);
        cartpole_reset_one(e, i);
        e->rewards[i] = 0.0f;
        e->terminals[i] = 0;
        e->truncations[i] = 0;
        e->masks[i] = 1;
    }
    memset(&e->log, 0, sizeof(Log));
}

static void cartpole_step(cartpole *e) {
    for (int i = 0; i < e->n; i++) {
        double *s = e->state + 4 * (size_t)i;
        double x = s[0], x_dot = s[1], theta = s[2], theta_dot = s[3];
        double force = e->actions[i] == 1 ? CP_FORCE_MAG : -CP_FORCE_MAG;
        double costheta = cos(theta), sintheta = sin(theta);
        double temp = (force + CP_POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / CP_TOTAL_MASS;
        double thetaacc = (CP_GRAVITY * sintheta - costheta * temp) /
                          (CP_LENGTH * (4.0 / 3.0 - CP_MASSPOLE * (costheta * costheta) / CP_TOTAL_MASS));
        double xacc = temp - CP_POLEMASS_LENGTH * thetaacc * costheta / CP_TOTAL_MASS;
        x = x + CP_TAU * x_dot;
        x_dot = x_dot + CP_TAU * xacc;
        theta = theta + CP_TAU * theta_dot;
        theta_dot = theta_dot + CP_TAU * thetaacc;
        s[0] = x; s[1] = x_dot; s[2] = theta; s[3] = theta_dot;

        /* `steps` is caller-writable: saturate so any int32 in it stays defined. */
        int32_t steps = e->steps[i] < e->max_steps ? e->steps[i] + 1 : e->max_steps;
        e->steps[i] = steps;
        uint8_t term = x < -CP_X_THRESHOLD || x > CP_X_THRESHOLD ||
                       theta < -CP_THETA_THRESHOLD || theta > CP_THETA_THRESHOLD;
        /* As Gymnasium's TimeLimit: truncated at the limit even if also terminated;
         * the learner gives termination precedence. */
        uint8_t trunc = steps >= e->max_steps;
        e->rewards[i] = 1.0f;
        e->terminals[i] = term;
        e->truncations[i] = trunc;
        if (term | trunc) {
            if (trunc) cartpole_write_obs(e, e->final_obs, i);
            log_episode(&e->log, (double)steps, (double)steps, (double)steps);
            cartpole_reset_one(e, i);
        } else {
            cartpole_write_obs(e, e->obs, i);
        }
    }
}

#endif

/* Registers the env with the engine: outside the guard on purpose (see c/registry.h). */
ENV_KIND(cartpole)
