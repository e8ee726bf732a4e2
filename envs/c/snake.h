/* Multi-agent snake: `snakes` snakes share each of num_envs maps.
 *
 * Map: width x height cells, padded with a wall border `vision` cells wide, so
 * an observation window never leaves the array (Wp = width + 2*vision, Hp =
 * height + 2*vision; the caller-owned int8 extra `map` is (num_envs, Hp*Wp)).
 * Map codes: 0 empty, 1 food, 2 wall, 5 snake head, 6 snake body.
 *
 * Observation: the (2*vision+1)^2 window centred on the agent's head, int8:
 *   0 empty, 1 food, 2 wall, 3 own head (always the centre), 4 own body,
 *   5 another snake's head, 6 another snake's body.
 *
 * Actions, Discrete(4), absolute: 0 up (row-1), 1 down (row+1), 2 left
 * (col-1), 3 right (col+1). Reversing into the own neck (the direction
 * opposite to the last move, for snakes longer than 1) is ignored: the snake
 * goes on straight. Any other int32 (out of range) also means "go on
 * straight"; it never indexes memory.
 *
 * Step, per map, snakes move one at a time in index order, each seeing the map
 * as the lower-indexed snakes left it. Moving into a wall, any head or any
 * body cell kills, except the own tail cell, which moves away in the same
 * step. So a head-on collision (two snakes entering one cell) is won by the
 * lower index; the other dies on its head. Food gives reward_food and grows
 * the snake by one (up to max_length; at max_length it still rewards).
 * Death gives reward_death and `terminals`; the dead body becomes food, head
 * first, while the map holds fewer than max_food food cells (0: 2 * food);
 * the rest of the body becomes empty (so food cannot fill the map), and the
 * snake respawns in the same step as a length-1 snake at
 * a random empty cell (obs: its first view). If no empty cell is left it
 * respawns on a food cell without reward (one of the two exists: the body
 * just left).
 * A death is never also a truncation. If max_steps > 0, a snake alive after
 * max_steps steps is truncated: its last view goes to final_observations, its
 * body becomes food, and it respawns like a dead one.
 * After all moves, eaten food is replaced at random empty cells until the map
 * holds `food` food cells (corpses count; no food is removed when there are
 * more, up to max_food, and none is placed when no empty cell is left).
 * Placement is bounded: SNAKE_TRIES random cells, then one linear scan.
 *
 * Log: return (reward sum), length (steps), score = food eaten in the episode.
 * Extras: `map` (above), `lengths` int32 (num_envs, snakes), `heads` int32
 * (num_envs, snakes): each snake's head as an index into its map row. Only
 * `map` is state; lengths and heads are copies written after every step.
 */
#ifndef APPLIANCE_SNAKE_H
#define APPLIANCE_SNAKE_H

#include "env.h"

#define SNAKE_EMPTY 0
#define SNAKE_FOOD 1
#define SNAKE_WALL 2
#define SNAKE_OWN_HEAD 3
#define SNAKE_OWN_BODY 4
#define SNAKE_HEAD 5
#define SNAKE_BODY 6
#define SNAKE_TRIES 16
#define SNAKE_MAX_RING_CELLS (1LL << 31) /* 8 GiB of body rings at most */

static const ParamSpec snake_PARAMS[] = {
    {"width", 16, 1, 4096, 1, "map width in cells, border walls excluded"},
    {"height", 16, 1, 4096, 1, "map height in cells, border walls excluded"},
    {"snakes", 4, 1, 1 << 20, 1, "snakes (agents) per map"},
    {"food", 8, 0, 1 << 24, 1, "food cells kept on each map: eaten food respawns at random empty cells"},
    {"vision", 5, 1, 32, 1, "view radius: observations are (2*vision+1)^2 cells centred on the head"},
    {"max_length", 256, 1, 1 << 20, 1, "longest a snake grows; food eaten at this length still rewards"},
    {"reward_food", 1.0, -1e6, 1e6, 0, "reward for eating one food cell"},
    {"reward_death", -1.0, -1e6, 0, 0, "reward (a penalty, <= 0) on the step a snake dies"},
    {"max_steps", 0, 0, 1e9, 1, "steps before a snake's episode is truncated; 0: never"},
    {"max_food", 0, 0, 1 << 24, 1, "most food cells a dead body tops a map up to (0: 2 * food)"},
    {0},
};
static const ExtraSpec snake_EXTRAS[] = {
    {"map", 'b'},
    {"lengths", 'i'},
    {"heads", 'i'},
    {0},
};

typedef struct {
    int32_t head;  /* index into the padded map */
    int32_t slot;  /* ring slot of the head; the tail is at slot - len + 1 */
    int32_t len;
    int32_t dir;   /* last move, 0..3 */
    int32_t steps; /* in the current episode */
    int32_t eaten;
    float ret;
    int32_t trunc;
} SnakeAgent;

typedef struct {
    int num_envs, snakes, num_agents;
    int width, height, vision, side, wp, hp, food, max_food, max_length, max_steps;
    long long cells; /* hp * wp */
    uint32_t mask;   /* ring capacity - 1 (a power of two >= max_length) */
    float reward_food, reward_death;
    int32_t delta[4];
    int8_t *map;
    int32_t *lengths, *heads;
    int8_t *obs, *final_obs;
    const int32_t *actions;
    float *rewards;
    uint8_t *terminals, *truncations, *masks;
    SnakeAgent *agents;
    uint32_t *rings; /* per agent: cells (row << 16 | col) of its body */
    Rng *rng;        /* per map */
    int32_t *food_count; /* per map */
    Log log;
} snake;

static void snake_layout(const double *p, Layout *L) {
    int v = (int)p[4], side = 2 * v + 1;
    L->agents_per_env = (int)p[2];
    L->obs_ndim = 2;
    L->obs_shape[0] = side;
    L->obs_shape[1] = side;
    L->obs_dtype = 'b';
    L->obs_low = 0;
    L->obs_high = SNAKE_BODY;
    L->num_actions = 4;
    L->extra_elems[0] = ((long long)p[1] + 2 * v) * ((long long)p[0] + 2 * v);
    L->extra_elems[1] = (long long)p[2];
    L->extra_elems[2] = (long long)p[2];
}

static void snake_free(snake *e) {
    free(e->agents);
    free(e->rings);
    free(e->rng);
    free(e->food_count);
    e->agents = NULL;
    e->rings = NULL;
    e->rng = NULL;
    e->food_count = NULL;
}

static int snake_init(snake *e, const Buffers *b, char *err, size_t n) {
    const double *p = b->params;
    e->num_envs = b->num_envs;
    e->num_agents = b->num_agents;
    e->width = (int)p[0];
    e->height = (int)p[1];
    e->snakes = (int)p[2];
    e->food = (int)p[3];
    e->vision = (int)p[4];
    e->max_length = (int)p[5];
    e->reward_food = (float)p[6];
    e->reward_death = (float)p[7];
    e->max_steps = (int)p[8];
    e->max_food = p[9] > 0 ? (int)p[9] : 2 * e->food;
    if (e->max_food < e->food)
        return ENV_ERR(err, n, "snake: parameter 'max_food' (%d) must be 0 or >= food (%d)",
                       e->max_food, e->food);
    long long free_cells = (long long)e->width * e->height;
    if (e->snakes > free_cells)
        return ENV_ERR(err, n, "snake: parameter 'snakes' (%d) exceeds the free cells of a %dx%d map",
                       e->snakes, e->width, e->height);
    if ((long long)e->snakes + e->food > free_cells)
        return ENV_ERR(err, n,
                       "snake: parameter 'food' (%d) plus snakes (%d) exceeds the free cells of a %dx%d map",
                       e->food, e->snakes, e->width, e->height);
    uint32_t cap = 1;
    while (cap < (uint32_t)e->max_length) cap <<= 1;
    if ((long long)e->num_agents * cap > SNAKE_MAX_RING_CELLS)
        return ENV_ERR(err, n, "snake: parameter 'max_length' (%d) times %d agents needs too much memory",
                       e->max_length, e->num_agents);
    e->mask = cap - 1;
    e->side = 2 * e->vision + 1;
    e->wp = e->width + 2 * e->vision;
    e->hp = e->height + 2 * e->vision;
    e->cells = (long long)e->wp * e->hp;
    e->delta[0] = -e->wp;
    e->delta[1] = e->wp;
    e->delta[2] = -1;
    e->delta[3] = 1;
    e->map = (int8_t *)b->extras[0];
    e->lengths = (int32_t *)b->extras[1];
    e->heads = (int32_t *)b->extras[2];
    e->obs = (int8_t *)b->observations;
    e->final_obs = (int8_t *)b->final_observations;
    e->actions = b->actions;
    e->rewards = b->rewards;
    e->terminals = b->terminals;
    e->truncations = b->truncations;
    e->masks = b->masks;
    e->agents = (SnakeAgent *)calloc((size_t)e->num_agents, sizeof(SnakeAgent));
    e->rings = (uint32_t *)calloc((size_t)e->num_agents * cap, sizeof(uint32_t));
    e->rng = (Rng *)calloc((size_t)e->num_envs, sizeof(Rng));
    e->food_count = (int32_t *)calloc((size_t)e->num_envs, sizeof(int32_t));
    if (!e->agents || !e->rings || !e->rng || !e->food_count) {
        snake_free(e);
        return ENV_ERR(err, n, "snake: out of memory for num_envs=%d, snakes=%d, max_length=%d",
                       e->num_envs, e->snakes, e->max_length);
    }
    memset(&e->log, 0, sizeof(Log));
    return 0;
}

static inline uint32_t snake_pack(const snake *e, int idx) {
    return ((uint32_t)(idx / e->wp) << 16) | (uint32_t)(idx % e->wp);
}

static inline int snake_unpack(const snake *e, uint32_t p) {
    return (int)(p >> 16) * e->wp + (int)(p & 0xffff);
}

/* A cell holding `want`: SNAKE_TRIES random interior cells, then one scan of
 * the map from a random start (walls never match). -1 if there is none. */
static int snake_find(const snake *e, const int8_t *map, Rng *rng, int8_t want) {
    for (int t = 0; t < SNAKE_TRIES; t++) {
        int r = (int)rng_below(rng, (uint32_t)e->height) + e->vision;
        int c = (int)rng_below(rng, (uint32_t)e->width) + e->vision;
        int idx = r * e->wp + c;
        if (map[idx] == want) return idx;
    }
    long long start = (long long)rng_below(rng, (uint32_t)e->cells);
    for (long long k = 0; k < e->cells; k++) {
        long long idx = start + k;
        if (idx >= e->cells) idx -= e->cells;
        if (map[idx] == want) return (int)idx;
    }
    return -1;
}

/* A new length-1 snake at an empty cell, else on a food cell (eating it). */
static void snake_spawn(snake *e, int m, int k) {
    int8_t *map = e->map + (size_t)m * e->cells;
    Rng *rng = &e->rng[m];
    int idx = snake_find(e, map, rng, SNAKE_EMPTY);
    if (idx < 0) {
        idx = snake_find(e, map, rng, SNAKE_FOOD);
        if (idx >= 0) e->food_count[m]--;
        else idx = e->vision * e->wp + e->vision; /* only if the caller rewrote the map */
    }
    SnakeAgent *a = &e->agents[k];
    a->head = idx;
    a->slot = 0;
    a->len = 1;
    a->dir = (int32_t)rng_below(rng, 4);
    a->steps = 0;
    a->eaten = 0;
    a->ret = 0.0f;
    a->trunc = 0;
    e->rings[(size_t)k * (e->mask + 1)] = snake_pack(e, idx);
    map[idx] = SNAKE_HEAD;
}

/* Snake k leaves the map: its cells become food, head first, while the map
 * holds fewer than max_food food cells, and empty after that. */
static void snake_to_food(snake *e, int m, int k) {
    int8_t *map = e->map + (size_t)m * e->cells;
    SnakeAgent *a = &e->agents[k];
    const uint32_t *ring = e->rings + (size_t)k * (e->mask + 1);
    for (int j = 0; j < a->len; j++) {
        int8_t code = e->food_count[m] < e->max_food ? SNAKE_FOOD : SNAKE_EMPTY;
        e->food_count[m] += code == SNAKE_FOOD;
        map[snake_unpack(e, ring[(uint32_t)(a->slot - j) & e->mask])] = code;
    }
}

static void snake_top_up_food(snake *e, int m) {
    int8_t *map = e->map + (size_t)m * e->cells;
    while (e->food_count[m] < e->food) {
        int idx = snake_find(e, map, &e->rng[m], SNAKE_EMPTY);
        if (idx < 0) break;
        map[idx] = SNAKE_FOOD;
        e->food_count[m]++;
    }
}

#define SNAKE_COPY_ROWS(S)                                                 \
    for (int r = 0; r < (S); r++) memcpy(o + r * (S), src + (size_t)r * wp, (S))

/* Agent k's window into o: (side) row copies, then its own cells relabelled. */
static inline void snake_view(const snake *e, const int8_t *map, int k, int8_t *o) {
    const SnakeAgent *a = &e->agents[k];
    const int v = e->vision, S = e->side, wp = e->wp;
    const int8_t *src = map + a->head - v * wp - v;
    switch (S) { /* constant sizes let the compiler inline the copies */
        case 7: SNAKE_COPY_ROWS(7); break;
        case 9: SNAKE_COPY_ROWS(9); break;
        case 11: SNAKE_COPY_ROWS(11); break;
        case 13: SNAKE_COPY_ROWS(13); break;
        case 15: SNAKE_COPY_ROWS(15); break;
        default: SNAKE_COPY_ROWS(S); break;
    }
    o[v * S + v] = SNAKE_OWN_HEAD;
    const uint32_t *ring = e->rings + (size_t)k * (e->mask + 1);
    uint32_t hp = ring[(uint32_t)a->slot & e->mask];
    int hr = (int)(hp >> 16) - v, hc = (int)(hp & 0xffff) - v;
    for (int j = 1; j < a->len; j++) {
        uint32_t p = ring[(uint32_t)(a->slot - j) & e->mask];
        unsigned dr = (unsigned)((int)(p >> 16) - hr), dc = (unsigned)((int)(p & 0xffff) - hc);
        if (dr < (unsigned)S && dc < (unsigned)S) o[dr * S + dc] = SNAKE_OWN_BODY;
    }
}

static void snake_reset(snake *e, uint64_t seed) {
    const int v = e->vision, S = e->side;
    for (int m = 0; m < e->num_envs; m++) {
        int8_t *map = e->map + (size_t)m * e->cells;
        rng_seed(&e->rng[m], seed, (uint64_t)m);
        memset(map, SNAKE_WALL, (size_t)e->cells);
        for (int r = 0; r < e->height; r++)
            memset(map + (size_t)(r + v) * e->wp + v, SNAKE_EMPTY, (size_t)e->width);
        e->food_count[m] = 0;
        for (int i = 0; i < e->snakes; i++) snake_spawn(e, m, m * e->snakes + i);
        snake_top_up_food(e, m);
        for (int i = 0; i < e->snakes; i++) {
            int k = m * e->snakes + i;
            snake_view(e, map, k, e->obs + (size_t)k * S * S);
            e->lengths[k] = 1;
            e->heads[k] = e->agents[k].head;
            e->rewards[k] = 0.0f;
            e->terminals[k] = 0;
            e->truncations[k] = 0;
            e->masks[k] = 1;
        }
    }
    memset(&e->log, 0, sizeof(Log));
}

static void snake_step_map(snake *e, int m) {
    int8_t *map = e->map + (size_t)m * e->cells;
    const int S = e->side, first = m * e->snakes, last = first + e->snakes;
    const uint32_t mask = e->mask;
    int ntrunc = 0;
    for (int k = first; k < last; k++) {
        SnakeAgent *a = &e->agents[k];
        uint32_t *ring = e->rings + (size_t)k * (mask + 1);
        uint32_t act = (uint32_t)e->actions[k];
        int dir = a->dir;
        if (act < 4 && !(a->len > 1 && act == (uint32_t)(dir ^ 1))) dir = (int)act;
        a->dir = dir;
        int head = a->head, target = head + e->delta[dir];
        int tail = snake_unpack(e, ring[(uint32_t)(a->slot - a->len + 1) & mask]);
        int8_t code = map[target];
        a->steps++;
        e->truncations[k] = 0;
        if (code >= SNAKE_WALL && target != tail) {
            a->ret += e->reward_death;
            log_episode(&e->log, a->ret, a->steps, a->eaten);
            e->rewards[k] = e->reward_death;
            e->terminals[k] = 1;
            snake_to_food(e, m, k);
            snake_spawn(e, m, k);
            continue;
        }
        float r = 0.0f;
        map[head] = SNAKE_BODY;
        if (code == SNAKE_FOOD) {
            r = e->reward_food;
            a->eaten++;
            e->food_count[m]--;
        }
        if (code == SNAKE_FOOD && a->len < e->max_length) a->len++;
        else map[tail] = SNAKE_EMPTY;
        static const int32_t pdelta[4] = {-(1 << 16), 1 << 16, -1, 1};
        uint32_t hp = ring[(uint32_t)a->slot & mask];
        a->slot = (int32_t)(((uint32_t)a->slot + 1) & mask);
        ring[a->slot] = hp + (uint32_t)pdelta[dir];
        a->head = target;
        map[target] = SNAKE_HEAD;
        a->ret += r;
        e->rewards[k] = r;
        e->terminals[k] = 0;
        if (e->max_steps > 0 && a->steps >= e->max_steps) {
            a->trunc = 1;
            ntrunc++;
        }
    }
    if (ntrunc) {
        for (int k = first; k < last; k++)
            if (e->agents[k].trunc) snake_view(e, map, k, e->final_obs + (size_t)k * S * S);
        for (int k = first; k < last; k++) {
            SnakeAgent *a = &e->agents[k];
            if (!a->trunc) continue;
            log_episode(&e->log, a->ret, a->steps, a->eaten);
            e->truncations[k] = 1;
            snake_to_food(e, m, k);
            snake_spawn(e, m, k);
        }
    }
    if (e->food_count[m] < e->food) snake_top_up_food(e, m);
    for (int k = first; k < last; k++) {
        snake_view(e, map, k, e->obs + (size_t)k * S * S);
        e->lengths[k] = e->agents[k].len;
        e->heads[k] = e->agents[k].head;
    }
}

static void snake_step(snake *e) {
    for (int m = 0; m < e->num_envs; m++) snake_step_map(e, m);
}

#endif

/* Registers the env with the engine: outside the guard on purpose (see c/registry.h). */
ENV_KIND(snake)
