/* Grid: a multi-agent gridworld with walls and goals, seen through an
 * egocentric window.
 *
 * Maps. `num_envs` maps of width x height cells (the outer ring is wall),
 * each with `agents` agents and `goals` goal cells. `maze` selects the
 * generator: 0 = a grid of rooms (at least room_size cells across) whose
 * walls get one door per room pair along a random spanning tree plus a door
 * with probability 1/4 on every other shared wall; 1 = a perfect maze carved
 * by randomized depth-first search on the odd cells. Both are connected by
 * construction: every free cell reaches every other, so every goal is
 * reachable from every cell an agent can stand on. Each map is stored
 * padded by a wall border `vision` cells wide, so an agent's view is
 * 2*vision+1 row copies with no bounds checks; the padded map (int8, shape
 * (height+2v, width+2v) per map) and the agents' positions (int32 flat
 * indices into it) are the caller-owned extras `map` and `positions`, and
 * agents are drawn onto the map.
 *
 * Cell codes (map and observations): 0 empty, 1 wall, 2 goal, 3 agent.
 * Observation: the (2v+1, 2v+1) int8 window centred on the agent (the
 * centre is the agent itself), rows = north to south, after every agent of
 * the map has moved this step.
 * Actions, Discrete(5): 0 no-op, 1 north (row-1), 2 south, 3 west (col-1),
 * 4 east. Any other int32 is a no-op (it never indexes memory).
 *
 * Step, per map, agents in index order: a move into an empty cell moves the
 * agent; into a wall or another agent (agents block each other, one per
 * cell) it stays put; into a goal it ends its own episode: `terminals` set,
 * reward goal_reward (+ step_reward), and the agent respawns on a random
 * empty cell (the goal stays). Every step also pays step_reward.
 * Time limit: after max_steps steps of a map, every agent on it that did not
 * just reach a goal is truncated (`truncations`, never `terminals`) with its
 * last view in `final_observations`; then the map is regenerated and all its
 * agents respawn, in the same step. Episode log: return, length (agent
 * steps), score = 1 if the episode ended at a goal, else 0.
 */
#ifndef APPLIANCE_GRID_H
#define APPLIANCE_GRID_H

#include "env.h"

enum { GRID_EMPTY = 0, GRID_WALL = 1, GRID_GOAL = 2, GRID_AGENT = 3 };

static const ParamSpec grid_PARAMS[] = {
    {"width", 16, 3, 4096, 1, "map width in cells, outer wall included"},
    {"height", 16, 3, 4096, 1, "map height in cells, outer wall included"},
    {"agents", 4, 1, 1e6, 1, "agents per map (at most the free cells left by the goals)"},
    {"goals", 1, 1, 1e6, 1, "goal cells per map"},
    {"maze", 0, 0, 1, 1, "generator: 0 rooms joined by doors, 1 maze (randomized DFS)"},
    {"room_size", 4, 1, 4096, 1, "smallest room width/height in rooms mode"},
    {"vision", 3, 1, 15, 1, "view radius v: observations are (2v+1, 2v+1) cells"},
    {"max_steps", 256, 1, 1e9, 1, "steps of a map before its agents are truncated and it is regenerated"},
    {"goal_reward", 1, 0, 1e6, 0, "reward for stepping onto a goal"},
    {"step_reward", 0, -1e6, 1e6, 0, "reward every agent gets on every step (e.g. -0.01)"},
    {0},
};
static const ExtraSpec grid_EXTRAS[] = {
    {"map", 'b'},       /* (num_envs, (height+2v)*(width+2v)) padded maps */
    {"positions", 'i'}, /* (num_envs, agents) flat indices into the padded map */
    {0},
};

typedef struct {
    int num_maps, agents, goals, maze, room_size, vision, max_steps;
    int w, h;          /* map size */
    int pw, ph;        /* padded size */
    int view;          /* 2*vision+1 */
    int free_min;      /* free cells every generated map has at least */
    float goal_reward, step_reward;
    int32_t delta[5];  /* flat offset of each action */
    int8_t *maps;
    int32_t *pos;
    int8_t *obs, *final_obs;
    const int32_t *actions;
    float *rewards;
    uint8_t *terminals, *truncations, *masks;
    float *ep_return;  /* per agent */
    int32_t *ep_length;
    int32_t *steps;    /* per map */
    Rng *rng;          /* per map */
    int32_t *stack;    /* generation scratch: DFS stack */
    uint8_t *seen;     /* generation scratch: visited flags */
    int32_t *room_x0, *room_x1, *room_y0, *room_y1;
    Log log;
} grid;

static void grid_layout(const double *p, Layout *L) {
    int v = (int)p[6];
    long long pw = (long long)p[0] + 2 * v, ph = (long long)p[1] + 2 * v;
    L->agents_per_env = (int)p[2];
    L->obs_ndim = 2;
    L->obs_shape[0] = 2 * v + 1;
    L->obs_shape[1] = 2 * v + 1;
    L->obs_dtype = 'b';
    L->obs_low = 0;
    L->obs_high = GRID_AGENT;
    L->num_actions = 5;
    L->extra_elems[0] = pw * ph;
    L->extra_elems[1] = (long long)p[2];
}

/* Rooms across one axis of `inner` cells: as many as fit at room_size plus a wall. */
static inline int grid_rooms_across(int inner, int room) {
    int n = (inner + 1) / (room + 1);
    return n < 1 ? 1 : n;
}

/* Free cells of a generated map, before goals and agents: exact for the maze,
 * a lower bound (the spanning-tree doors only) for rooms. */
static long long grid_free_cells(int w, int h, int maze, int room) {
    if (maze) return 2LL * ((w - 1) / 2) * ((h - 1) / 2) - 1;
    long long iw = w - 2, ih = h - 2;
    long long nx = grid_rooms_across((int)iw, room), ny = grid_rooms_across((int)ih, room);
    long long walls = (nx - 1) * ih + (ny - 1) * iw - (nx - 1) * (ny - 1);
    return iw * ih - walls + (nx * ny - 1);
}

static void grid_free(grid *e) {
    free(e->ep_return);
    free(e->ep_length);
    free(e->steps);
    free(e->rng);
    free(e->stack);
    free(e->seen);
    free(e->room_x0);
    free(e->room_x1);
    free(e->room_y0);
    free(e->room_y1);
    e->ep_return = NULL;
    e->ep_length = e->steps = e->stack = NULL;
    e->rng = NULL;
    e->seen = NULL;
    e->room_x0 = e->room_x1 = e->room_y0 = e->room_y1 = NULL;
}

static int grid_init(grid *e, const Buffers *b, char *err, size_t n) {
    const double *p = b->params;
    memset(e, 0, sizeof(*e));
    e->num_maps = b->num_envs;
    e->w = (int)p[0];
    e->h = (int)p[1];
    e->agents = (int)p[2];
    e->goals = (int)p[3];
    e->maze = (int)p[4];
    e->room_size = (int)p[5];
    e->vision = (int)p[6];
    e->max_steps = (int)p[7];
    e->goal_reward = (float)p[8];
    e->step_reward = (float)p[9];
    e->view = 2 * e->vision + 1;
    e->pw = e->w + 2 * e->vision;
    e->ph = e->h + 2 * e->vision;
    long long free_cells = grid_free_cells(e->w, e->h, e->maze, e->room_size);
    if (free_cells < 2 || e->goals > free_cells - 1)
        return ENV_ERR(err, n,
                       "grid: parameter 'goals' must be at most %lld (free cells of a %dx%d %s map "
                       "minus one for an agent), got %d",
                       free_cells - 1 < 0 ? 0 : free_cells - 1, e->w, e->h, e->maze ? "maze" : "rooms",
                       e->goals);
    if (e->agents > free_cells - e->goals)
        return ENV_ERR(err, n,
                       "grid: parameter 'agents' must be at most %lld (free cells of a %dx%d %s map "
                       "minus %d goals), got %d",
                       free_cells - e->goals, e->w, e->h, e->maze ? "maze" : "rooms", e->goals,
                       e->agents);
    e->free_min = (int)free_cells;
    int32_t d[5] = {0, -e->pw, e->pw, -1, 1};
    memcpy(e->delta, d, sizeof(d));
    e->maps = (int8_t *)b->extras[0];
    e->pos = (int32_t *)b->extras[1];
    e->obs = (int8_t *)b->observations;
    e->final_obs = (int8_t *)b->final_observations;
    e->actions = b->actions;
    e->rewards = b->rewards;
    e->terminals = b->terminals;
    e->truncations = b->truncations;
    e->masks = b->masks;
    size_t na = (size_t)b->num_agents, cells = (size_t)e->w * (size_t)e->h;
    e->ep_return = (float *)calloc(na, sizeof(float));
    e->ep_length = (int32_t *)calloc(na, sizeof(int32_t));
    e->steps = (int32_t *)calloc((size_t)e->num_maps, sizeof(int32_t));
    e->rng = (Rng *)calloc((size_t)e->num_maps, sizeof(Rng));
    e->stack = (int32_t *)calloc(cells, sizeof(int32_t));
    e->seen = (uint8_t *)calloc(cells, 1);
    e->room_x0 = (int32_t *)calloc((size_t)e->w, sizeof(int32_t));
    e->room_x1 = (int32_t *)calloc((size_t)e->w, sizeof(int32_t));
    e->room_y0 = (int32_t *)calloc((size_t)e->h, sizeof(int32_t));
    e->room_y1 = (int32_t *)calloc((size_t)e->h, sizeof(int32_t));
    if (!e->ep_return || !e->ep_length || !e->steps || !e->rng || !e->stack || !e->seen ||
        !e->room_x0 || !e->room_x1 || !e->room_y0 || !e->room_y1) {
        grid_free(e);
        return ENV_ERR(err, n, "grid: out of memory for num_envs=%d", e->num_maps);
    }
    return 0;
}

/* Flat padded index of map cell (x, y). */
static inline int32_t grid_at(const grid *e, int x, int y) {
    return (int32_t)(y + e->vision) * e->pw + (x + e->vision);
}

/* A uniformly drawn empty cell: rejection sampling, then a scan from a random
 * start (bounded; init guarantees an empty cell exists). */
static int32_t grid_random_empty(const grid *e, const int8_t *map, Rng *rng) {
    int iw = e->w - 2, ih = e->h - 2;
    for (int t = 0; t < 32; t++) {
        int32_t c = grid_at(e, 1 + (int)rng_below(rng, (uint32_t)iw), 1 + (int)rng_below(rng, (uint32_t)ih));
        if (map[c] == GRID_EMPTY) return c;
    }
    long long total = (long long)iw * ih, start = rng_below(rng, (uint32_t)total);
    for (long long k = 0; k < total; k++) {
        long long j = (start + k) % total;
        int32_t c = grid_at(e, 1 + (int)(j % iw), 1 + (int)(j / iw));
        if (map[c] == GRID_EMPTY) return c;
    }
    return -1; /* unreachable */
}

/* Splits `inner` cells (from 1) into `rooms` spans separated by one-cell walls. */
static void grid_split(int inner, int rooms, int32_t *lo, int32_t *hi) {
    int base = (inner - (rooms - 1)) / rooms, extra = (inner - (rooms - 1)) % rooms, x = 1;
    for (int k = 0; k < rooms; k++) {
        lo[k] = x;
        hi[k] = x + base + (k < extra) - 1;
        x = hi[k] + 2;
    }
}

static inline void grid_door(const grid *e, int8_t *map, Rng *rng, int a, int b, int nx) {
    int ax = a % nx, ay = a / nx, bx = b % nx, by = b / nx;
    if (ay == by) { /* east-west neighbours: door in the wall column between */
        int x = e->room_x1[ax < bx ? ax : bx] + 1;
        int y = e->room_y0[ay] + (int)rng_below(rng, (uint32_t)(e->room_y1[ay] - e->room_y0[ay] + 1));
        map[grid_at(e, x, y)] = GRID_EMPTY;
    } else {
        int y = e->room_y1[ay < by ? ay : by] + 1;
        int x = e->room_x0[ax] + (int)rng_below(rng, (uint32_t)(e->room_x1[ax] - e->room_x0[ax] + 1));
        map[grid_at(e, x, y)] = GRID_EMPTY;
    }
}

/* Randomized DFS over an nx*ny lattice; calls carve(a, b) for each tree edge.
 * Each node is pushed once and popped once: at most 2*nx*ny iterations. */
#define GRID_DFS(e, rng, nx, ny, CARVE)                                               \
    do {                                                                              \
        int n_ = (nx) * (ny), top_ = 0;                                               \
        memset((e)->seen, 0, (size_t)n_);                                             \
        int s_ = (int)rng_below((rng), (uint32_t)n_);                                 \
        (e)->seen[s_] = 1;                                                            \
        (e)->stack[top_++] = s_;                                                      \
        while (top_ > 0) {                                                            \
            int a = (e)->stack[top_ - 1], ax_ = a % (nx), ay_ = a / (nx), nb_[4], k_ = 0; \
            if (ax_ > 0 && !(e)->seen[a - 1]) nb_[k_++] = a - 1;                      \
            if (ax_ < (nx) - 1 && !(e)->seen[a + 1]) nb_[k_++] = a + 1;               \
            if (ay_ > 0 && !(e)->seen[a - (nx)]) nb_[k_++] = a - (nx);                \
            if (ay_ < (ny) - 1 && !(e)->seen[a + (nx)]) nb_[k_++] = a + (nx);         \
            if (k_ == 0) { top_--; continue; }                                        \
            int b = nb_[rng_below((rng), (uint32_t)k_)];                              \
            (e)->seen[b] = 1;                                                         \
            (e)->stack[top_++] = b;                                                   \
            CARVE;                                                                    \
        }                                                                             \
    } while (0)

static void grid_generate_rooms(grid *e, int8_t *map, Rng *rng) {
    int iw = e->w - 2, ih = e->h - 2;
    int nx = grid_rooms_across(iw, e->room_size), ny = grid_rooms_across(ih, e->room_size);
    grid_split(iw, nx, e->room_x0, e->room_x1);
    grid_split(ih, ny, e->room_y0, e->room_y1);
    for (int y = 1; y <= ih; y++) memset(map + grid_at(e, 1, y), GRID_EMPTY, (size_t)iw);
    for (int k = 0; k + 1 < nx; k++)
        for (int y = 1; y <= ih; y++) map[grid_at(e, e->room_x1[k] + 1, y)] = GRID_WALL;
    for (int k = 0; k + 1 < ny; k++)
        memset(map + grid_at(e, 1, e->room_y1[k] + 1), GRID_WALL, (size_t)iw);
    GRID_DFS(e, rng, nx, ny, grid_door(e, map, rng, a, b, nx));
    /* Loops: a second door on each shared wall with probability 1/4. */
    for (int r = 0; r < nx * ny; r++) {
        if (r % nx + 1 < nx && rng_below(rng, 4) == 0) grid_door(e, map, rng, r, r + 1, nx);
        if (r / nx + 1 < ny && rng_below(rng, 4) == 0) grid_door(e, map, rng, r, r + nx, nx);
    }
}

static void grid_generate_maze(grid *e, int8_t *map, Rng *rng) {
    int nx = (e->w - 1) / 2, ny = (e->h - 1) / 2;
    for (int c = 0; c < nx * ny; c++) map[grid_at(e, 2 * (c % nx) + 1, 2 * (c / nx) + 1)] = GRID_EMPTY;
    GRID_DFS(e, rng, nx, ny,
             map[grid_at(e, (a % nx) + (b % nx) + 1, (a / nx) + (b / nx) + 1)] = GRID_EMPTY);
}

static inline void grid_write_view(const grid *e, const int8_t *map, int32_t p, int8_t *out) {
    const int8_t *src = map + p - e->vision * (e->pw + 1);
    int s = e->view, pw = e->pw;
    if (s == 7) { /* the default radius: fixed-size copies the compiler inlines */
        for (int r = 0; r < 7; r++) memcpy(out + r * 7, src + r * pw, 7);
    } else {
        for (int r = 0; r < s; r++) memcpy(out + r * s, src + r * pw, (size_t)s);
    }
}

/* New map m: walls, goals and agents, fresh episode counters. */
static void grid_regenerate(grid *e, int m) {
    int8_t *map = e->maps + (size_t)m * e->pw * e->ph;
    int32_t *pos = e->pos + (size_t)m * e->agents;
    Rng *rng = &e->rng[m];
    memset(map, GRID_WALL, (size_t)e->pw * e->ph);
    if (e->maze) grid_generate_maze(e, map, rng);
    else grid_generate_rooms(e, map, rng);
    for (int g = 0; g < e->goals; g++) map[grid_random_empty(e, map, rng)] = GRID_GOAL;
    for (int a = 0; a < e->agents; a++) {
        pos[a] = grid_random_empty(e, map, rng);
        map[pos[a]] = GRID_AGENT;
        size_t i = (size_t)m * e->agents + a;
        e->ep_return[i] = 0.0f;
        e->ep_length[i] = 0;
    }
    e->steps[m] = 0;
}

static void grid_reset(grid *e, uint64_t seed) {
    size_t S = (size_t)e->view * e->view;
    for (int m = 0; m < e->num_maps; m++) {
        rng_seed(&e->rng[m], seed, (uint64_t)m);
        grid_regenerate(e, m);
        const int8_t *map = e->maps + (size_t)m * e->pw * e->ph;
        for (int a = 0; a < e->agents; a++) {
            size_t i = (size_t)m * e->agents + a;
            grid_write_view(e, map, e->pos[i], e->obs + i * S);
            e->rewards[i] = 0.0f;
            e->terminals[i] = 0;
            e->truncations[i] = 0;
            e->masks[i] = 1;
        }
    }
    memset(&e->log, 0, sizeof(Log));
}

static void grid_step(grid *e) {
    const size_t S = (size_t)e->view * e->view, A = (size_t)e->agents;
    const float step_r = e->step_reward, goal_r = step_r + e->goal_reward;
    for (int m = 0; m < e->num_maps; m++) {
        int8_t *map = e->maps + (size_t)m * e->pw * e->ph;
        int32_t *pos = e->pos + (size_t)m * A;
        size_t base = (size_t)m * A;
        for (size_t a = 0; a < A; a++) {
            size_t i = base + a;
            uint32_t act = (uint32_t)e->actions[i];
            int32_t p = pos[a], q = p + e->delta[act < 5u ? act : 0u];
            int8_t c = map[q];
            float r = step_r;
            uint8_t term = 0;
            if (c == GRID_EMPTY) {
                map[p] = GRID_EMPTY;
                map[q] = GRID_AGENT;
                pos[a] = q;
            } else if (c == GRID_GOAL) {
                term = 1;
                r = goal_r;
                map[p] = GRID_EMPTY;
                q = grid_random_empty(e, map, &e->rng[m]);
                map[q] = GRID_AGENT;
                pos[a] = q;
            }
            e->rewards[i] = r;
            e->terminals[i] = term;
            e->truncations[i] = 0;
            float ret = e->ep_return[i] + r;
            int32_t len = e->ep_length[i] + 1;
            if (term) {
                log_episode(&e->log, (double)ret, (double)len, 1.0);
                ret = 0.0f;
                len = 0;
            }
            e->ep_return[i] = ret;
            e->ep_length[i] = len;
        }
        if (++e->steps[m] >= e->max_steps) {
            for (size_t a = 0; a < A; a++) {
                size_t i = base + a;
                if (e->terminals[i]) continue; /* ended at a goal this step */
                e->truncations[i] = 1;
                grid_write_view(e, map, pos[a], e->final_obs + i * S);
                log_episode(&e->log, (double)e->ep_return[i], (double)e->ep_length[i], 0.0);
            }
            grid_regenerate(e, m);
        }
        for (size_t a = 0; a < A; a++) grid_write_view(e, map, pos[a], e->obs + (base + a) * S);
    }
}

#endif

/* Registers the env with the engine: outside the guard on purpose (see c/registry.h). */
ENV_KIND(grid)
