/* Moba: a mini MOBA. Two teams of five heroes, three lanes, a jungle, two bases.
 *
 * Map. A square of map_size cells (S), point-symmetric about its centre, so
 * team 1 plays exactly team 0's game mirrored: cell (x, y) of team 0 is cell
 * (S-1-x, S-1-y) of team 1. Rows go north to south (y grows southwards).
 * Team 0's base is the south-west corner, team 1's the north-east. The
 * outer ring is wall. Lanes are 3-cell strips: the top lane runs up the west
 * edge and along the north edge, the bottom lane along the south edge and up
 * the east edge, the mid lane along the diagonal between the bases. The
 * jungle between them is a checkerboard of 3x3 tree blocks (walls) with
 * 1-cell paths, folded so the map stays symmetric; four neutral camps sit in
 * cleared spots. Terrain codes (extra `terrain`): 0 floor, 1 wall, 2 lane,
 * 3 base.
 *
 * Units. Per team: 5 heroes, 3 towers (one per lane) and an ancient; 4
 * neutral camps; creeps spawned every wave_interval ticks, wave_size per lane
 * per team (at most MOBA_MAX_CREEPS alive per map: a wave that does not fit is
 * cut short). Units stand on cells (several may share one) and never enter a
 * wall; distances are Chebyshev (8-direction moves). Creeps walk their lane's
 * waypoints to the enemy ancient and fight the nearest enemy within 3 cells;
 * towers and ancients shoot the nearest enemy creep in range, else the
 * nearest hero; neutrals fight back whoever hit them within 4 cells of their
 * camp, else walk home and heal; a killed camp returns after MOBA_CAMP_RESPAWN
 * ticks. Towers and ancients never heal.
 *
 * Heroes. Hit points, mana, a basic attack (range 2, every other tick) and
 * three abilities with cooldowns and mana costs: 1 Blast (area damage, radius
 * 2, around a target within 5 cells), 2 Mend (heals itself or an ally within
 * 4), 3 Blink (jumps up to 4 cells toward a target, or along the move
 * direction when the target is itself). Gold and experience come only from
 * kills: a last hit on a creep (20 gold) or a neutral (40), a hero kill
 * (100), a destroyed tower (150 to every hero of the team); the dying unit's
 * experience is split among the living enemy heroes within 6 cells. Levels
 * (at most 10) come from experience and raise hit points, mana and damage.
 * A dead hero waits respawn_time ticks, then returns to its fountain at full
 * health. Near its own fountain a hero heals quickly.
 *
 * Agents and masks. Rows 0-4 of each map are team 0's heroes, rows 5-9 team
 * 1's. `player` and `opponent` say who plays teams 0 and 1: 0 the agents
 * (the learner), 1 the scripted bot in this file, 2 uniform random actions.
 * A row is masked (`masks` 0) while its hero is dead and always when its team
 * is not played by the agents: such rows are padding, their rewards, flags
 * and episode logs stay 0 and their actions are ignored.
 *
 * Actions, MultiDiscrete [9, 17, 4, 17], in the hero's own (mirrored for team 1)
 * frame: move (0 stay, 1-8 N, NE, E, SE, S, SW, W, NW); attack target (an
 * observation row: 5-15 = that row's unit when it is in range; anything else,
 * or a unit out of range, = the nearest enemy in range: heroes always attack
 * when they can, as in the games this imitates); ability (0 none, 1 Blast,
 * 2 Mend, 3 Blink); ability target (an observation row; 0 = self). Any other
 * int32 means 0 (ability target: none); an ability whose target is invalid or
 * out of range, or that lacks mana or cooldown, is not cast and costs nothing.
 *
 * Observation, a packed row (uint8, MOBA_OBS_BYTES): `entities`, float32
 * (17, 10), then `window`, int8 (11, 11): the cells within 5 of the hero, seen
 * from its own team (0 floor, 1 wall, 2 lane, 3 base, 4 allied hero, 5 enemy
 * hero, 6 allied creep, 7 enemy creep, 8 allied tower, 9 enemy tower, 10
 * allied ancient, 11 enemy ancient, 12 neutral). Entity rows: 0 self, 1-4 the
 * allied heroes, 5-9 the enemy heroes (fog of war: zero unless a unit of the
 * team sees them, within 5 cells), 10-13 the nearest enemy creeps within 5,
 * 14 the nearest enemy structure, 15 the nearest neutral within 5, 16 the
 * game. Unit rows: present, dx/10, dy/10, hp fraction, hits to kill/10, in
 * attack range, mana fraction (heroes) or is-ancient, level/10, respawn
 * fraction (dead allies), targets me; dx, dy clipped to [-4, 4]. Self: alive, hp, mana, level/10, three
 * cooldown fractions, attack ready, x/S, y/S. Game: tick/max_steps, own and
 * enemy ancient hp, own and enemy towers alive/3, gold/2000 (at most 1),
 * progress to the next level, respawn fraction.
 *
 * Rewards per hero: reward_damage per hit point dealt to enemy heroes and
 * structures, reward_last_hit per last hit, reward_death on dying,
 * reward_tower to the team on each enemy tower destroyed, +reward_win to the
 * winners and -reward_win to the losers. Destroying the enemy ancient ends
 * the game (`terminals`; both ancients on one tick: a draw); after max_steps
 * ticks it is truncated (`truncations`, last observation in
 * `final_observations`). Episode log per agent row: return, length (ticks),
 * score = 1 for a win, else 0.
 *
 * Extras (copies written after every step, for tests and rendering; `heroes` and
 * `units` only with the parameter extras=1, else they have no columns: a training
 * run reads neither, and writing them costs about 10% of the step):
 * `terrain` int8 (S*S); `heroes` float32 (10 x MOBA_HERO_COLS: team, x, y, hp,
 * hp_max, mana, mana_max, level, xp, gold, three cooldowns, respawn, alive,
 * creep last hits, neutral last hits, kills, deaths, towers); `units` float32
 * (MOBA_OTHERS x MOBA_UNIT_COLS, structures, camps then creep slots: kind,
 * team, x, y, hp, hp_max, alive, target); `game` float32 (MOBA_GAME_COLS:
 * tick, winner (-1 none, 0, 1, 2 draw), creeps alive, deaths so far, waves, how the map's
 * last game ended: -1 none yet, 0 or 1 its winner, 2 a draw, 3 the time limit).
 */
#ifndef APPLIANCE_MOBA_H
#define APPLIANCE_MOBA_H

#include "env.h"

#define MOBA_TEAM 5
#define MOBA_AGENTS 10
#define MOBA_STRUCTS 8 /* per team: towers top, mid, bottom, then the ancient */
#define MOBA_CAMPS 4
#define MOBA_MAX_CREEPS 96
#define MOBA_FIRST_STRUCT 10
#define MOBA_FIRST_CAMP (MOBA_FIRST_STRUCT + MOBA_STRUCTS)
#define MOBA_FIRST_CREEP (MOBA_FIRST_CAMP + MOBA_CAMPS)
#define MOBA_UNITS (MOBA_FIRST_CREEP + MOBA_MAX_CREEPS)
#define MOBA_OTHERS (MOBA_UNITS - MOBA_AGENTS)
#define MOBA_V 5
#define MOBA_WIN (2 * MOBA_V + 1)
#define MOBA_ROWS 17
#define MOBA_FEATS 10
#define MOBA_ENTITY_BYTES (MOBA_ROWS * MOBA_FEATS * 4)
#define MOBA_OBS_BYTES ((MOBA_ENTITY_BYTES + MOBA_WIN * MOBA_WIN + 3) / 4 * 4)
#define MOBA_HERO_COLS 20
#define MOBA_UNIT_COLS 8
#define MOBA_GAME_COLS 8
#define MOBA_CAMP_RESPAWN 60
#define MOBA_XP_RADIUS 6
#define MOBA_MAX_LEVEL 10
#define MOBA_MAX_SIZE 96
#define MOBA_BSIDE (MOBA_MAX_SIZE / 4) /* blocks of 4x4 cells per side */
#define MOBA_BLOCKS (MOBA_BSIDE * MOBA_BSIDE)

enum { MOBA_FLOOR, MOBA_WALL, MOBA_LANE, MOBA_BASE, MOBA_ALLY_HERO, MOBA_ENEMY_HERO, MOBA_ALLY_CREEP,
       MOBA_ENEMY_CREEP, MOBA_ALLY_TOWER, MOBA_ENEMY_TOWER, MOBA_ALLY_ANCIENT, MOBA_ENEMY_ANCIENT,
       MOBA_NEUTRAL, MOBA_CODES };
enum { MOBA_NONE, MOBA_HERO, MOBA_CREEP, MOBA_TOWER, MOBA_ANCIENT, MOBA_CAMP };
enum { MOBA_AGENT = 0, MOBA_SCRIPTED = 1, MOBA_RANDOM = 2 };
enum { MOBA_BLAST = 1, MOBA_MEND = 2, MOBA_BLINK = 3 };
#define MOBA_FAR 10000 /* a dead unit's position in the live table */
#define MOBA_AUTO (-2) /* attack target: the nearest enemy in range */

/* Unit stats by kind: hit points, damage per attack, attack range, experience on death. */
static const float MOBA_HP[6] = {0, 500, 150, 1000, 2000, 300};
static const float MOBA_DMG[6] = {0, 30, 12, 50, 40, 15};
static const int MOBA_RANGE[6] = {0, 2, 1, 4, 3, 1};
static const float MOBA_XP[6] = {0, 100, 30, 100, 0, 50};
/* Abilities 1-3: mana cost, cooldown (ticks), range. */
static const float MOBA_COST[4] = {0, 40, 50, 30};
static const int MOBA_COOLDOWN[4] = {0, 10, 16, 14};
static const int MOBA_REACH[4] = {0, 5, 4, 4};
static const int MOBA_DX[9] = {0, 0, 1, 1, 1, 0, -1, -1, -1};
static const int MOBA_DY[9] = {0, -1, -1, 0, 1, 1, 1, 0, -1};
static const int MOBA_BOT_LANE[MOBA_TEAM] = {0, 1, 2, 1, 2};

static const ParamSpec moba_PARAMS[] = {
    {"map_size", 40, 24, MOBA_MAX_SIZE, 1, "map width and height in cells, outer wall included"},
    {"wave_interval", 30, 1, 1e6, 1, "ticks between creep waves"},
    {"wave_size", 3, 0, 8, 1, "creeps per lane per team in a wave"},
    {"respawn_time", 20, 1, 1e6, 1, "ticks a dead hero waits before it respawns"},
    {"max_steps", 1500, 1, 1e8, 1, "ticks before the game is truncated"},
    {"player", 0, 0, 2, 1, "who plays team 0: 0 the agents, 1 the scripted bot, 2 random actions"},
    {"opponent", 0, 0, 2, 1, "who plays team 1: 0 the agents (self-play), 1 the scripted bot, 2 random actions"},
    {"reward_win", 1, 0, 1e3, 0, "reward for destroying the enemy ancient (its negative for losing)"},
    {"reward_damage", 0.001, 0, 1e3, 0, "reward per hit point dealt to enemy heroes and structures"},
    {"reward_last_hit", 0.05, 0, 1e3, 0, "reward for the last hit on a creep or neutral"},
    {"reward_death", -0.2, -1e3, 0, 0, "reward (a penalty, <= 0) when the hero dies"},
    {"reward_tower", 0.25, 0, 1e3, 0, "reward to every hero of a team that destroys an enemy tower"},
    {"extras", 0, 0, 1, 1, "1 writes the heroes and units tables every tick (tests, render); 0 leaves them empty"},
    {0},
};
static const ExtraSpec moba_EXTRAS[] = {
    {"terrain", 'b'},
    {"heroes", 'f'},
    {"units", 'f'},
    {"game", 'f'},
    {0},
};

typedef struct {
    float hp, hp_max, dmg;
    int16_t x, y, target; /* target: unit index or -1 */
    int16_t home_x, home_y;
    int16_t lk; /* its row in its team's live table, -1 none */
    int8_t kind, team, alive, range, lane, waypoint, atk_cd;
    int8_t shown; /* dead, and written so to the `units` extra */
} MobaUnit;

typedef struct {
    float mana, mana_max, xp, gold, ret;
    int32_t level, respawn, cd[4], bot_wp;
    int32_t last_hits, camp_hits, kills, deaths, towers;
    int16_t slot[MOBA_ROWS]; /* unit behind each observation row (-1 none), as last observed */
} MobaHero;

typedef struct {
    MobaUnit u[MOBA_UNITS];
    MobaHero h[MOBA_AGENTS];
    /* The live table: units of each team alive when it was built (heroes, structures, creeps, by
     * index), with their positions in step with their moves (MOBA_FAR once dead), so the nearest-unit
     * scans run over short packed arrays the compiler vectorizes. */
    int16_t live[2][MOBA_UNITS], lx[2][MOBA_UNITS], ly[2][MOBA_UNITS];
    int8_t lkind[2][MOBA_UNITS];
    uint8_t crowd[2][MOBA_BLOCKS]; /* how many of the table's living units stand in each 4x4 block */
    uint32_t crowded[2][MOBA_BSIDE]; /* per row of blocks, a bit for each block with someone in it */
    int nlive[2], top; /* top: one past the highest unit slot used this game */
    /* Since the table was built: a unit came alive (it must be rebuilt), a unit died (compacted). */
    int8_t entered, died;
    int brows;         /* rows of blocks the map has */
    int8_t seen[2][MOBA_AGENTS]; /* team t sees hero j */
    float reward[MOBA_AGENTS];
    int32_t tick, camp_timer[MOBA_CAMPS], deaths, waves, winner;
    int32_t result; /* how the map's last game ended: -1 none yet, 0/1 winner, 2 draw, 3 time limit */
    Rng rng;
} MobaGame;

typedef struct {
    int num_envs, S, P; /* map size; padded size S + 2V */
    int wave_interval, wave_size, respawn_time, max_steps, control[2];
    int tables; /* the heroes and units extras are written (parameter extras) */
    float w_win, w_damage, w_last_hit, w_death, w_tower;
    int16_t fountain[2][2], structs[MOBA_STRUCTS][2], camps[MOBA_CAMPS][2], spawn[2][3][2];
    int16_t way[2][3][3][2]; /* waypoints per team, lane */
    int8_t *terrain;         /* S*S */
    int8_t *padded;          /* P*P terrain with a wall border */
    int8_t *padded1;         /* the same seen by team 1: rotated half a turn */
    int8_t *cells[2];        /* padded and padded1 with each team's view of the units painted on, per map in turn */
    int32_t painted[MOBA_UNITS], npainted; /* the cells painted on (team 0's view) */
    uint16_t *flow[2];       /* BFS distance to each team's fountain (65535: unreachable) */
    int32_t *queue;          /* BFS scratch (init only) */
    MobaGame *games;
    uint8_t *obs, *final_obs;
    const int32_t *actions;
    float *rewards;
    uint8_t *terminals, *truncations, *masks;
    int8_t *x_terrain;
    float *x_heroes, *x_units, *x_game;
    float card[MOBA_AGENTS][3]; /* scratch: moba_cards of the map in turn */
    float tenth_dmg[MOBA_AGENTS]; /* scratch: 0.1 / each hero's damage, the map in turn */
    float team_game[2][5];        /* scratch: the first five of each team's game row, the map in turn */
    /* Reciprocals, set once by moba_init, so observations multiply instead of divide. */
    float inv_S, inv_respawn, inv_max_steps, inv_hp[6], inv_cooldown[4];
    float thirds[8]; /* towers alive / 3 for each set of standing towers, summed as one by one */
    float along[2][2 * MOBA_MAX_SIZE + 1]; /* team t's observed offset for a cell difference d, at d + MAX */
    Log log;
} moba;

static void moba_layout(const double *p, Layout *L) {
    int S = (int)p[0];
    L->agents_per_env = MOBA_AGENTS;
    L->obs_ndim = 1;
    L->obs_shape[0] = MOBA_OBS_BYTES;
    L->obs_dtype = 'B';
    L->obs_low = 0;
    L->obs_high = 255;
    L->num_actions = 9;
    L->action_dims = 4;
    L->action_nvec[0] = 9;
    L->action_nvec[1] = MOBA_ROWS;
    L->action_nvec[2] = 4;
    L->action_nvec[3] = MOBA_ROWS;
    L->obs_parts = 2;
    L->obs_part[0] = (ObsPart){"entities", 'f', 2, {MOBA_ROWS, MOBA_FEATS, 0}, -4.0, 4.0};
    L->obs_part[1] = (ObsPart){"window", 'b', 2, {MOBA_WIN, MOBA_WIN, 0}, 0, MOBA_CODES - 1};
    L->extra_elems[0] = (long long)S * S;
    L->extra_elems[1] = p[12] ? MOBA_AGENTS * MOBA_HERO_COLS : 0;
    L->extra_elems[2] = p[12] ? MOBA_OTHERS * MOBA_UNIT_COLS : 0;
    L->extra_elems[3] = MOBA_GAME_COLS;
}

static inline int moba_abs(int v) { return v < 0 ? -v : v; }
static inline int moba_sign(int v) { return (v > 0) - (v < 0); }
static inline int moba_cheb(const MobaUnit *a, const MobaUnit *b) {
    int dx = moba_abs(a->x - b->x), dy = moba_abs(a->y - b->y);
    return dx > dy ? dx : dy;
}
static inline int16_t moba_cheb16(int16_t ax, int16_t ay, int16_t bx, int16_t by) {
    int16_t dx = (int16_t)(ax - bx), dy = (int16_t)(ay - by);
    dx = dx < 0 ? (int16_t)-dx : dx;
    dy = dy < 0 ? (int16_t)-dy : dy;
    return dx > dy ? dx : dy;
}
static inline int moba_dist_to(const MobaUnit *a, int x, int y) {
    int dx = moba_abs(a->x - x), dy = moba_abs(a->y - y);
    return dx > dy ? dx : dy;
}
/* (x, y) is at most one cell off the map (a step from a cell on it): the padded map's wall border
 * answers for the outside, with no bounds test. */
static inline int moba_passable(const moba *e, int x, int y) {
    return e->padded[(y + MOBA_V) * e->P + x + MOBA_V] != MOBA_WALL;
}
static inline float moba_minf(float a, float b) { return a < b ? a : b; }
static inline float moba_clampf(float v, float lim) { return v > lim ? lim : (v < -lim ? -lim : v); }

/* ------------------------------------------------------------------ the map */

/* Jungle trees: 3x3 blocks on a checkerboard of 4x4 tiles, folded onto one half. */
static int moba_tree(int S, int x, int y) {
    if (x + y > S - 1) {
        x = S - 1 - x;
        y = S - 1 - y;
    }
    return (x % 4) && (y % 4) && (((x / 4) + (y / 4)) % 2 == 0);
}

static int moba_terrain_code(const moba *e, int x, int y) {
    int S = e->S;
    if (x == 0 || y == 0 || x == S - 1 || y == S - 1) return MOBA_WALL;
    if ((x <= 8 && y >= S - 9) || (x >= S - 9 && y <= 8)) return MOBA_BASE;
    if (x <= 3 || y <= 3 || x >= S - 4 || y >= S - 4 || moba_abs(x + y - (S - 1)) <= 1) return MOBA_LANE;
    for (int c = 0; c < MOBA_CAMPS; c++)
        if (moba_abs(x - e->camps[c][0]) <= 1 && moba_abs(y - e->camps[c][1]) <= 1) return MOBA_FLOOR;
    return moba_tree(S, x, y) ? MOBA_WALL : MOBA_FLOOR;
}

static void moba_set(int16_t *out, int x, int y) { out[0] = (int16_t)x; out[1] = (int16_t)y; }

/* Team 0's landmarks; team 1's are their mirror images. */
static void moba_landmarks(moba *e) {
    int S = e->S, far = S - 1;
    int16_t one[MOBA_STRUCTS / 2][2], camp[2][2], spawn[3][2], way[3][3][2];
    moba_set(e->fountain[0], 2, S - 3);
    moba_set(one[0], 2, S / 2);                      /* top tower, on the west strip */
    moba_set(one[1], S * 3 / 8, far - S * 3 / 8);    /* mid tower, on the diagonal */
    moba_set(one[2], 2 + (S - 3 - S / 2), S - 3);    /* bottom tower, as far out on the south strip */
    moba_set(one[3], 5, S - 6);                      /* ancient */
    moba_set(camp[0], S / 4, S / 2);
    moba_set(camp[1], S / 2, S * 3 / 4);
    moba_set(spawn[0], 2, S - 8);
    moba_set(spawn[1], 7, S - 8);
    moba_set(spawn[2], 7, S - 3);
    /* Lanes end at the enemy ancient (the mirror of one[3]). */
    moba_set(way[0][0], 2, 2);
    moba_set(way[0][1], S - 9, 2);
    moba_set(way[1][0], far - 5, far - (S - 6));
    moba_set(way[1][1], far - 5, far - (S - 6));
    moba_set(way[2][0], S - 3, S - 3);
    moba_set(way[2][1], S - 3, 8);
    for (int l = 0; l < 3; l++) moba_set(way[l][2], far - 5, far - (S - 6));
    moba_set(e->fountain[1], far - e->fountain[0][0], far - e->fountain[0][1]);
    for (int k = 0; k < MOBA_STRUCTS / 2; k++) {
        moba_set(e->structs[k], one[k][0], one[k][1]);
        moba_set(e->structs[k + MOBA_STRUCTS / 2], far - one[k][0], far - one[k][1]);
    }
    for (int c = 0; c < 2; c++) {
        moba_set(e->camps[c], camp[c][0], camp[c][1]);
        moba_set(e->camps[c + 2], far - camp[c][0], far - camp[c][1]);
    }
    for (int l = 0; l < 3; l++) {
        moba_set(e->spawn[0][l], spawn[l][0], spawn[l][1]);
        moba_set(e->spawn[1][l], far - spawn[l][0], far - spawn[l][1]);
        for (int w = 0; w < 3; w++) {
            moba_set(e->way[0][l][w], way[l][w][0], way[l][w][1]);
            moba_set(e->way[1][l][w], far - way[l][w][0], far - way[l][w][1]);
        }
    }
}

/* Distance (8-neighbour moves) from every cell to team t's fountain. */
static void moba_bfs(moba *e, int t) {
    int S = e->S, head = 0, tail = 0;
    uint16_t *d = e->flow[t];
    for (int i = 0; i < S * S; i++) d[i] = 65535;
    int start = e->fountain[t][1] * S + e->fountain[t][0];
    d[start] = 0;
    e->queue[tail++] = start;
    while (head < tail) {
        int c = e->queue[head++], x = c % S, y = c / S;
        for (int k = 1; k <= 8; k++) {
            int nx = x + MOBA_DX[k], ny = y + MOBA_DY[k];
            if (!moba_passable(e, nx, ny) || d[ny * S + nx] != 65535) continue;
            d[ny * S + nx] = (uint16_t)(d[c] + 1);
            e->queue[tail++] = ny * S + nx;
        }
    }
}

static void moba_build_map(moba *e) {
    int S = e->S, P = e->P;
    moba_landmarks(e);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) e->terrain[y * S + x] = (int8_t)moba_terrain_code(e, x, y);
    memset(e->padded, MOBA_WALL, (size_t)P * P);
    for (int y = 0; y < S; y++) memcpy(e->padded + (y + MOBA_V) * P + MOBA_V, e->terrain + y * S, (size_t)S);
    for (int i = 0; i < P * P; i++) e->padded1[i] = e->padded[P * P - 1 - i];
    memcpy(e->cells[0], e->padded, (size_t)P * P);
    memcpy(e->cells[1], e->padded1, (size_t)P * P);
    moba_bfs(e, 0);
    moba_bfs(e, 1);
    for (int m = 0; m < 8; m++)
        for (int k = 0; k < 3; k++) e->thirds[m] += (float)(m >> k & 1) / 3.0f;
    for (int t = 0; t < 2; t++)
        for (int d = -MOBA_MAX_SIZE; d <= MOBA_MAX_SIZE; d++)
            e->along[t][d + MOBA_MAX_SIZE] = moba_clampf((t ? -1.0f : 1.0f) * (float)d / 10.0f, 4.0f);
}

/* ------------------------------------------------------------------ init and free */

static void moba_free(moba *e) {
    free(e->terrain);
    free(e->padded);
    free(e->padded1);
    free(e->cells[0]);
    free(e->cells[1]);
    free(e->flow[0]);
    free(e->flow[1]);
    free(e->queue);
    free(e->games);
    e->terrain = e->padded = e->padded1 = e->cells[0] = e->cells[1] = NULL;
    e->flow[0] = e->flow[1] = NULL;
    e->queue = NULL;
    e->games = NULL;
}

static int moba_init(moba *e, const Buffers *b, char *err, size_t n) {
    const double *p = b->params;
    memset(e, 0, sizeof(*e));
    e->num_envs = b->num_envs;
    e->S = (int)p[0];
    e->P = e->S + 2 * MOBA_V;
    e->wave_interval = (int)p[1];
    e->wave_size = (int)p[2];
    e->respawn_time = (int)p[3];
    e->max_steps = (int)p[4];
    e->inv_S = 1.0f / (float)e->S;
    e->inv_respawn = 1.0f / (float)e->respawn_time;
    e->inv_max_steps = 1.0f / (float)e->max_steps;
    for (int k = 1; k < 6; k++) e->inv_hp[k] = 1.0f / MOBA_HP[k];
    for (int a = 1; a < 4; a++) e->inv_cooldown[a] = 1.0f / (float)MOBA_COOLDOWN[a];
    e->control[0] = (int)p[5];
    e->control[1] = (int)p[6];
    e->w_win = (float)p[7];
    e->w_damage = (float)p[8];
    e->w_last_hit = (float)p[9];
    e->w_death = (float)p[10];
    e->w_tower = (float)p[11];
    e->tables = p[12] != 0;
    e->obs = (uint8_t *)b->observations;
    e->final_obs = (uint8_t *)b->final_observations;
    e->actions = b->actions;
    e->rewards = b->rewards;
    e->terminals = b->terminals;
    e->truncations = b->truncations;
    e->masks = b->masks;
    e->x_terrain = (int8_t *)b->extras[0];
    e->x_heroes = (float *)b->extras[1];
    e->x_units = (float *)b->extras[2];
    e->x_game = (float *)b->extras[3];
    size_t cells = (size_t)e->S * e->S, padded = (size_t)e->P * e->P;
    e->terrain = (int8_t *)calloc(cells, 1);
    e->padded = (int8_t *)calloc(padded, 1);
    e->padded1 = (int8_t *)calloc(padded, 1);
    e->cells[0] = (int8_t *)calloc(padded, 1);
    e->cells[1] = (int8_t *)calloc(padded, 1);
    e->flow[0] = (uint16_t *)calloc(cells, sizeof(uint16_t));
    e->flow[1] = (uint16_t *)calloc(cells, sizeof(uint16_t));
    e->queue = (int32_t *)calloc(cells, sizeof(int32_t));
    e->games = (MobaGame *)calloc((size_t)e->num_envs, sizeof(MobaGame));
    if (!e->terrain || !e->padded || !e->padded1 || !e->cells[0] || !e->cells[1] || !e->flow[0] || !e->flow[1] || !e->queue || !e->games) {
        moba_free(e);
        return ENV_ERR(err, n, "moba: out of memory for num_envs=%d", b->num_envs);
    }
    moba_build_map(e);
    return 0;
}

/* ------------------------------------------------------------------ units */

static inline int moba_team_of_hero(int h) { return h / MOBA_TEAM; }

static void moba_hero_stats(MobaUnit *u, MobaHero *h) {
    int up = h->level - 1;
    u->hp_max = MOBA_HP[MOBA_HERO] + 60.0f * (float)up;
    u->dmg = MOBA_DMG[MOBA_HERO] + 4.0f * (float)up;
    h->mana_max = 200.0f + 20.0f * (float)up;
}

static void moba_place_hero(moba *e, MobaGame *g, int i) {
    MobaUnit *u = &g->u[i];
    int t = moba_team_of_hero(i);
    /* A random free cell next to the fountain (the base around it is open floor). */
    u->x = (int16_t)(e->fountain[t][0] + (int)rng_below(&g->rng, 3) - 1);
    u->y = (int16_t)(e->fountain[t][1] + (int)rng_below(&g->rng, 3) - 1);
    u->hp = u->hp_max;
    u->alive = 1;
    u->target = -1;
    u->atk_cd = 0;
    g->entered = 1;
    g->h[i].mana = g->h[i].mana_max;
    g->h[i].bot_wp = 0;
}

static void moba_spawn_camp(MobaGame *g, const moba *e, int c) {
    MobaUnit *u = &g->u[MOBA_FIRST_CAMP + c];
    memset(u, 0, sizeof(*u));
    u->kind = MOBA_CAMP;
    u->team = 2;
    u->x = u->home_x = e->camps[c][0];
    u->y = u->home_y = e->camps[c][1];
    u->hp = u->hp_max = MOBA_HP[MOBA_CAMP];
    u->dmg = MOBA_DMG[MOBA_CAMP];
    u->range = (int8_t)MOBA_RANGE[MOBA_CAMP];
    u->target = u->lk = -1;
    u->alive = 1;
    g->entered = 1;
}

static void moba_new_game(moba *e, MobaGame *g) {
    Rng rng = g->rng;
    int32_t result = g->result;
    memset(g, 0, sizeof(*g));
    g->rng = rng;
    g->result = result;
    g->winner = -1;
    g->top = MOBA_FIRST_CREEP;
    g->brows = (e->S + 3) / 4;
    for (int i = 0; i < MOBA_AGENTS; i++) {
        MobaUnit *u = &g->u[i];
        u->kind = MOBA_HERO;
        u->team = (int8_t)moba_team_of_hero(i);
        u->range = (int8_t)MOBA_RANGE[MOBA_HERO];
        g->h[i].level = 1;
        moba_hero_stats(u, &g->h[i]);
        moba_place_hero(e, g, i);
        for (int r = 0; r < MOBA_ROWS; r++) g->h[i].slot[r] = -1;
    }
    for (int k = 0; k < MOBA_STRUCTS; k++) {
        MobaUnit *u = &g->u[MOBA_FIRST_STRUCT + k];
        int kind = k % 4 == 3 ? MOBA_ANCIENT : MOBA_TOWER;
        u->kind = (int8_t)kind;
        u->team = (int8_t)(k / 4);
        u->x = e->structs[k][0];
        u->y = e->structs[k][1];
        u->hp = u->hp_max = MOBA_HP[kind];
        u->dmg = MOBA_DMG[kind];
        u->range = (int8_t)MOBA_RANGE[kind];
        u->target = -1;
        u->alive = 1;
    }
    for (int c = 0; c < MOBA_CAMPS; c++) moba_spawn_camp(g, e, c);
}

static inline void moba_enter(MobaGame *g, int t, int x, int y) {
    if (g->crowd[t][(y >> 2) * MOBA_BSIDE + (x >> 2)]++ == 0) g->crowded[t][y >> 2] |= 1u << (x >> 2);
}
static inline void moba_leave(MobaGame *g, int t, int x, int y) {
    if (--g->crowd[t][(y >> 2) * MOBA_BSIDE + (x >> 2)] == 0) g->crowded[t][y >> 2] &= ~(1u << (x >> 2));
}

static void moba_build_live(MobaGame *g) {
    g->entered = g->died = 0;
    g->nlive[0] = g->nlive[1] = 0;
    for (int t = 0; t < 2; t++) {
        memset(g->crowd[t], 0, (size_t)g->brows * MOBA_BSIDE);
        memset(g->crowded[t], 0, (size_t)g->brows * sizeof(uint32_t));
    }
    for (int i = 0; i < g->top; i++) {
        MobaUnit *u = &g->u[i];
        u->lk = -1;
        if (!u->alive || u->team > 1) continue;
        int t = u->team, k = g->nlive[t]++;
        u->lk = (int16_t)k;
        g->live[t][k] = (int16_t)i;
        g->lx[t][k] = u->x;
        g->ly[t][k] = u->y;
        g->lkind[t][k] = u->kind;
        moba_enter(g, t, u->x, u->y);
    }
}

/* The table as moba_build_live would build it when units only died since it was built: the dead
 * rows dropped, the rest in order (the block counts left their cells as they died). */
static void moba_compact_live(MobaGame *g) {
    g->died = 0;
    for (int t = 0; t < 2; t++) {
        int n = 0;
        for (int k = 0; k < g->nlive[t]; k++) {
            MobaUnit *u = &g->u[g->live[t][k]];
            if (!u->alive) continue;
            u->lk = (int16_t)n;
            g->live[t][n] = g->live[t][k];
            g->lx[t][n] = g->lx[t][k];
            g->ly[t][n] = g->ly[t][k];
            g->lkind[t][n] = g->lkind[t][k];
            n++;
        }
        g->nlive[t] = n;
    }
}

/* The live table up to date for the next tick: rebuilt when a unit came alive, else compacted. */
static void moba_refresh_live(MobaGame *g) {
    if (g->entered) moba_build_live(g);
    else if (g->died) moba_compact_live(g);
}

/* Whether a unit of team t's table may stand within r of (x, y) (no: none does). */
static int moba_any_near(const MobaGame *g, int t, int x, int y, int r) {
    int x0 = x - r < 0 ? 0 : (x - r) >> 2, y0 = y - r < 0 ? 0 : (y - r) >> 2;
    int x1 = (x + r) >> 2, y1 = (y + r) >> 2;
    y1 = y1 < g->brows ? y1 : g->brows - 1;
    uint32_t cols = (x1 < 31 ? (2u << x1) - 1 : ~0u) & ~((1u << x0) - 1);
    for (int by = y0; by <= y1; by++)
        if (g->crowded[t][by] & cols) return 1;
    return 0;
}

/* Puts unit u on cell (x, y), in the live table too. */
static inline void moba_put(MobaGame *g, MobaUnit *u, int x, int y) {
    if (u->lk >= 0) {
        int t = u->team;
        g->lx[t][u->lk] = (int16_t)x;
        g->ly[t][u->lk] = (int16_t)y;
        if ((x ^ u->x) >> 2 || (y ^ u->y) >> 2) { /* into another block */
            moba_leave(g, t, u->x, u->y);
            moba_enter(g, t, x, y);
        }
    }
    u->x = (int16_t)x;
    u->y = (int16_t)y;
}

/* Moves one cell; a blocked diagonal slides along one axis instead. Returns whether it moved. */
static int moba_try(const moba *e, MobaGame *g, MobaUnit *u, int dx, int dy) {
    if (!(dx | dy) || !moba_passable(e, u->x + dx, u->y + dy)) return 0;
    moba_put(g, u, u->x + dx, u->y + dy);
    return 1;
}
static int moba_move(const moba *e, MobaGame *g, MobaUnit *u, int dx, int dy) {
    if (moba_try(e, g, u, dx, dy)) return 1;
    if (dx && dy) return moba_try(e, g, u, dx, 0) || moba_try(e, g, u, 0, dy);
    return 0;
}
static void moba_step_to(const moba *e, MobaGame *g, MobaUnit *u, int x, int y) {
    moba_move(e, g, u, moba_sign(x - u->x), moba_sign(y - u->y));
}
/* One step down team t's distance field toward its fountain. */
static int moba_home_dir(const moba *e, const MobaUnit *u, int t) {
    int S = e->S, best = 0;
    unsigned d = e->flow[t][u->y * S + u->x];
    for (int k = 1; k <= 8; k++) {
        int nx = u->x + MOBA_DX[k], ny = u->y + MOBA_DY[k];
        if (moba_passable(e, nx, ny) && e->flow[t][ny * S + nx] < d) {
            d = e->flow[t][ny * S + nx];
            best = k;
        }
    }
    return best;
}

static int moba_level_of(float xp) {
    int level = 1;
    while (level < MOBA_MAX_LEVEL && xp >= 50.0f * (float)(level * (level + 1))) level++;
    return level;
}

static void moba_give_xp(MobaGame *g, int h, float xp) {
    MobaHero *hero = &g->h[h];
    MobaUnit *u = &g->u[h];
    hero->xp += xp;
    int level = moba_level_of(hero->xp);
    if (level != hero->level) {
        float hp_max = u->hp_max, mana_max = hero->mana_max;
        hero->level = level;
        moba_hero_stats(u, hero);
        u->hp = moba_minf(u->hp + (u->hp_max - hp_max), u->hp_max);
        hero->mana = moba_minf(hero->mana + (hero->mana_max - mana_max), hero->mana_max);
    }
}

/* The dying unit's experience, split among living heroes of `team` within MOBA_XP_RADIUS. */
static void moba_share_xp(MobaGame *g, const MobaUnit *dead, int team, float xp) {
    int near[MOBA_TEAM], n = 0;
    for (int h = team * MOBA_TEAM; h < (team + 1) * MOBA_TEAM; h++)
        if (g->u[h].alive && moba_cheb(&g->u[h], dead) <= MOBA_XP_RADIUS) near[n++] = h;
    for (int k = 0; k < n; k++) moba_give_xp(g, near[k], xp / (float)n);
}

static void moba_kill(moba *e, MobaGame *g, int killer, int victim) {
    MobaUnit *v = &g->u[victim];
    int team = killer >= 0 ? g->u[killer].team : 1 - v->team; /* the killing team */
    int by_hero = killer >= 0 && killer < MOBA_AGENTS;
    v->alive = 0;
    v->hp = 0.0f;
    g->deaths++;
    g->died = 1;
    if (v->lk >= 0) { /* out of every scan */
        g->lx[(int)v->team][v->lk] = g->ly[(int)v->team][v->lk] = MOBA_FAR;
        moba_leave(g, v->team, v->x, v->y);
        v->lk = -1;
    }
    if (team < 2) moba_share_xp(g, v, team, MOBA_XP[(int)v->kind]);
    switch (v->kind) {
        case MOBA_HERO:
            if (by_hero) {
                g->h[killer].gold += 100.0f;
                g->h[killer].kills++;
            }
            g->h[victim].deaths++;
            g->h[victim].respawn = e->respawn_time;
            g->reward[victim] += e->w_death;
            v->x = e->fountain[(int)v->team][0]; /* waits at the fountain, off the map's cells */
            v->y = e->fountain[(int)v->team][1];
            break;
        case MOBA_CREEP:
        case MOBA_CAMP:
            if (by_hero) {
                int camp = v->kind == MOBA_CAMP;
                g->h[killer].gold += camp ? 40.0f : 20.0f;
                if (camp) g->h[killer].camp_hits++;
                else g->h[killer].last_hits++;
                g->reward[killer] += e->w_last_hit;
            }
            if (v->kind == MOBA_CAMP) g->camp_timer[victim - MOBA_FIRST_CAMP] = MOBA_CAMP_RESPAWN;
            break;
        case MOBA_TOWER:
            for (int h = team * MOBA_TEAM; h < (team + 1) * MOBA_TEAM; h++) {
                g->h[h].gold += 150.0f;
                g->h[h].towers++;
                g->reward[h] += e->w_tower;
            }
            break;
        case MOBA_ANCIENT:
            g->winner = g->winner == -1 ? team : 2; /* both on one tick: a draw */
            break;
    }
}

/* `attacker` (a unit index, or -1) deals `amount` to `target`. */
static void moba_hit(moba *e, MobaGame *g, int attacker, int target, float amount) {
    MobaUnit *v = &g->u[target];
    if (!v->alive) return;
    float dealt = moba_minf(amount, v->hp);
    v->hp -= dealt;
    if (attacker >= 0 && attacker < MOBA_AGENTS && v->kind != MOBA_CREEP && v->kind != MOBA_CAMP)
        g->reward[attacker] += e->w_damage * dealt;
    if (v->kind == MOBA_CAMP && attacker >= 0) v->target = (int16_t)attacker;
    if (v->hp <= 0.0f) moba_kill(e, g, attacker, target);
}

/* Basic attack with a +-10% damage roll; units attack every other tick. */
static void moba_attack(moba *e, MobaGame *g, int i, int target) {
    MobaUnit *u = &g->u[i];
    if (u->atk_cd > 0 || target < 0 || !g->u[target].alive || moba_cheb(u, &g->u[target]) > u->range) return;
    float roll = 0.9f + 0.2f * (float)rng_double(&g->rng);
    u->atk_cd = 2;
    moba_hit(e, g, i, target, u->dmg * roll);
}

/* The smallest key over a team's live table, one vectorized pass: a key packs (distance, plus
 * `later` (8) for a non-creep) above the table row (< 128), so the smallest key is the nearest
 * unit, ties to the lowest index (the table is in index order); INT16_MAX: none within `radius` (< 8). */
static int moba_closest(const int16_t *xs, const int16_t *ys, const int8_t *kind, int n, int x, int y,
                        int radius, int later) {
    int lo = INT16_MAX;
    for (int k = 0; k < n; k++) {
        int dx = moba_abs(xs[k] - x), dy = moba_abs(ys[k] - y), d = dx > dy ? dx : dy;
        int out = (radius - d) >> 31; /* all ones beyond the radius: arithmetic, so it vectorizes */
        int key = (((d << 7) + (kind[k] != MOBA_CREEP) * later + k) & ~out) | (INT16_MAX & out);
        lo = key < lo ? key : lo;
    }
    return lo;
}

/* The nearest enemy of unit i within `radius` (any creep before any hero or structure when
 * `creeps_first`; neutrals too when `with_camps`), or -1. Ties go to the lower index. */
static int moba_nearest_enemy(const MobaGame *g, int i, int radius, int creeps_first, int with_camps) {
    const MobaUnit *u = &g->u[i];
    int o = 1 - u->team, best = -1, best_key = 1 << 30;
    int lo = !moba_any_near(g, o, u->x, u->y, radius) ? INT16_MAX
             : moba_closest(g->lx[o], g->ly[o], g->lkind[o], g->nlive[o], u->x, u->y, radius, creeps_first ? 8 << 7 : 0);
    if (lo < INT16_MAX) {
        best = g->live[o][lo & 127];
        best_key = (lo >> 7 & 7) + (lo >> 10 ? 1000 : 0);
    }
    for (int c = MOBA_FIRST_CAMP; c < MOBA_FIRST_CREEP && with_camps; c++) {
        int d = moba_cheb(u, &g->u[c]);
        if (g->u[c].alive && d <= radius && d < best_key) {
            best = c;
            best_key = d;
        }
    }
    return best;
}

static int moba_valid_target(const MobaGame *g, int i, int j, int leash) {
    return j >= 0 && g->u[j].alive && g->u[j].team != g->u[i].team && moba_cheb(&g->u[i], &g->u[j]) <= leash;
}

static void moba_creep_act(moba *e, MobaGame *g, int i) {
    MobaUnit *u = &g->u[i];
    if (!moba_valid_target(g, i, u->target, 5)) {
        u->target = -1;
        /* Idle creeps look around every fourth tick (staggered): most of them walk an empty lane. */
        if (((g->tick + i) & 3) == 0) u->target = (int16_t)moba_nearest_enemy(g, i, 3, 0, 0);
    }
    if (u->target >= 0) {
        const MobaUnit *v = &g->u[u->target];
        if (moba_cheb(u, v) > u->range) moba_step_to(e, g, u, v->x, v->y);
        else moba_attack(e, g, i, u->target);
        return;
    }
    const int16_t *w = e->way[(int)u->team][(int)u->lane][(int)u->waypoint];
    if (u->waypoint < 2 && moba_dist_to(u, w[0], w[1]) <= 1) u->waypoint++;
    moba_step_to(e, g, u, w[0], w[1]);
}

static void moba_tower_act(moba *e, MobaGame *g, int i) {
    MobaUnit *u = &g->u[i];
    if (!moba_valid_target(g, i, u->target, u->range))
        u->target = u->atk_cd ? -1 : (int16_t)moba_nearest_enemy(g, i, u->range, 1, 0); /* looks when it can shoot */
    moba_attack(e, g, i, u->target);
}

static void moba_camp_act(moba *e, MobaGame *g, int i) {
    MobaUnit *u = &g->u[i];
    int t = u->target;
    if (t >= 0 && (!g->u[t].alive || moba_dist_to(&g->u[t], u->home_x, u->home_y) > 4)) t = u->target = -1;
    if (t >= 0) {
        if (moba_cheb(u, &g->u[t]) > u->range) moba_step_to(e, g, u, g->u[t].x, g->u[t].y);
        else moba_attack(e, g, i, t);
    } else if (u->x != u->home_x || u->y != u->home_y) {
        moba_step_to(e, g, u, u->home_x, u->home_y);
    } else {
        u->hp = u->hp_max; /* neutrals heal at their camp; towers never do */
    }
}

static void moba_spawn_wave(moba *e, MobaGame *g) {
    int slot = MOBA_FIRST_CREEP;
    g->waves++;
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 3; l++)
            for (int k = 0; k < e->wave_size; k++) {
                while (slot < MOBA_UNITS && g->u[slot].alive) slot++;
                if (slot == MOBA_UNITS) return;
                MobaUnit *u = &g->u[slot];
                memset(u, 0, sizeof(*u));
                u->kind = MOBA_CREEP;
                u->team = (int8_t)t;
                u->lane = (int8_t)l;
                u->x = e->spawn[t][l][0];
                u->y = e->spawn[t][l][1];
                u->hp = u->hp_max = MOBA_HP[MOBA_CREEP];
                u->dmg = MOBA_DMG[MOBA_CREEP];
                u->range = (int8_t)MOBA_RANGE[MOBA_CREEP];
                u->target = u->lk = -1;
                u->alive = 1;
                g->entered = 1;
                if (slot >= g->top) g->top = slot + 1;
            }
}

/* ------------------------------------------------------------------ heroes */

/* Whether hero h can cast ability a now (mana and cooldown). */
static inline int moba_ready(const MobaGame *g, int h, int a) {
    return g->h[h].cd[a] == 0 && g->h[h].mana >= MOBA_COST[a];
}

static void moba_spend(MobaGame *g, int h, int a) {
    g->h[h].mana -= MOBA_COST[a];
    g->h[h].cd[a] = MOBA_COOLDOWN[a];
}

static void moba_blast(moba *e, MobaGame *g, int h, int x, int y) {
    float dmg = 60.0f + 10.0f * (float)(g->h[h].level - 1);
    int o = 1 - g->u[h].team;
    moba_spend(g, h, MOBA_BLAST);
    for (int k = 0; k < g->nlive[o]; k++) {
        int j = g->live[o][k];
        MobaUnit *v = &g->u[j];
        if (v->alive && (v->kind == MOBA_HERO || v->kind == MOBA_CREEP) && moba_dist_to(v, x, y) <= 2)
            moba_hit(e, g, h, j, dmg);
    }
    for (int c = MOBA_FIRST_CAMP; c < MOBA_FIRST_CREEP; c++)
        if (g->u[c].alive && moba_dist_to(&g->u[c], x, y) <= 2) moba_hit(e, g, h, c, dmg);
}

/* Hero h's move (absolute direction), attack (unit, MOBA_AUTO or -1) and ability on a unit. */
static void moba_hero_act(moba *e, MobaGame *g, int h, int dir, int attack, int ability, int at) {
    MobaUnit *u = &g->u[h];
    if (ability > 0 && at >= 0 && g->u[at].alive && moba_ready(g, h, ability)) {
        const MobaUnit *t = &g->u[at];
        int d = moba_cheb(u, t);
        if (ability == MOBA_BLAST && d <= MOBA_REACH[MOBA_BLAST]) {
            moba_blast(e, g, h, t->x, t->y);
        } else if (ability == MOBA_MEND && t->kind == MOBA_HERO && t->team == u->team &&
                   d <= MOBA_REACH[MOBA_MEND]) {
            moba_spend(g, h, MOBA_MEND);
            MobaUnit *w = &g->u[at];
            w->hp = moba_minf(w->hp + 80.0f + 10.0f * (float)(g->h[h].level - 1), w->hp_max);
        } else if (ability == MOBA_BLINK && (at != h || dir != 0)) {
            int dx = at == h ? MOBA_DX[dir] : moba_sign(t->x - u->x);
            int dy = at == h ? MOBA_DY[dir] : moba_sign(t->y - u->y);
            moba_spend(g, h, MOBA_BLINK);
            for (int k = 0; k < MOBA_REACH[MOBA_BLINK]; k++) {
                if (at != h && u->x == t->x && u->y == t->y) break;
                if (at != h) {
                    dx = moba_sign(t->x - u->x);
                    dy = moba_sign(t->y - u->y);
                }
                if (!moba_move(e, g, u, dx, dy)) break;
            }
        }
    }
    if (dir > 0) moba_move(e, g, u, MOBA_DX[dir], MOBA_DY[dir]);
    if (u->atk_cd > 0) return; /* no attack this tick: spare the search for a target */
    if (attack == MOBA_AUTO) attack = moba_nearest_enemy(g, h, u->range, 0, 1);
    if (attack >= 0 && g->u[attack].team != u->team && moba_cheb(u, &g->u[attack]) > u->range)
        attack = moba_nearest_enemy(g, h, u->range, 0, 1); /* out of range: whatever is in range */
    if (attack >= 0 && g->u[attack].team != u->team) moba_attack(e, g, h, attack);
}

/* The learner's action row for hero h, in its own frame, to moba_hero_act's terms. */
static void moba_agent_act(moba *e, MobaGame *g, int h, const int32_t *a) {
    const int16_t *slot = g->h[h].slot;
    uint32_t move = (uint32_t)a[0], atk = (uint32_t)a[1], ab = (uint32_t)a[2], at = (uint32_t)a[3];
    int dir = move < 9u ? (int)move : 0;
    if (dir && g->u[h].team == 1) dir = (dir + 3) % 8 + 1; /* mirrored frame: the opposite direction */
    int attack = atk >= 5u && atk <= 15u && slot[atk] >= 0 ? slot[atk] : MOBA_AUTO;
    int ability = ab < 4u ? (int)ab : 0;
    int target = at < (uint32_t)MOBA_ROWS ? (at == 0u ? h : slot[at]) : -1;
    moba_hero_act(e, g, h, dir, attack, ability, target);
}

static void moba_random_act(moba *e, MobaGame *g, int h) {
    int32_t a[4];
    a[0] = (int32_t)rng_below(&g->rng, 9);
    a[1] = (int32_t)rng_below(&g->rng, MOBA_ROWS);
    a[2] = (int32_t)rng_below(&g->rng, 4);
    a[3] = (int32_t)rng_below(&g->rng, MOBA_ROWS);
    moba_agent_act(e, g, h, a);
}

/* The scripted bot: lanes, last hits, fights heroes, heals, retreats when hurt or under a tower. */
static void moba_bot_act(moba *e, MobaGame *g, int h) {
    MobaUnit *u = &g->u[h];
    MobaHero *me = &g->h[h];
    int t = u->team, o = 1 - t;
    int weak = -1, creep = -1, hero = -1, hero_d = 99, tower = -1, enemies = 0;
    float weak_hp = 1e9f;
    for (int k = 0; k < g->nlive[o]; k++) {
        int j = g->live[o][k];
        const MobaUnit *v = &g->u[j];
        int d = moba_cheb(u, v);
        if (!v->alive || d > MOBA_V) continue;
        enemies++;
        if (v->kind == MOBA_CREEP) {
            if (d <= u->range && v->hp < weak_hp) { weak = j; weak_hp = v->hp; }
            if (creep < 0 || d < moba_cheb(u, &g->u[creep])) creep = j;
        } else if (v->kind == MOBA_HERO && d < hero_d) {
            hero = j;
            hero_d = d;
        } else if (v->kind == MOBA_TOWER || v->kind == MOBA_ANCIENT) {
            tower = j;
        }
    }
    int covered = 0; /* allied creeps tanking the enemy structure */
    if (tower >= 0)
        for (int k = 0; k < g->nlive[t]; k++) {
            const MobaUnit *v = &g->u[g->live[t][k]];
            if (v->kind == MOBA_CREEP && moba_cheb(v, &g->u[tower]) <= g->u[tower].range) covered++;
        }
    float hpf = u->hp / u->hp_max;
    int exposed = tower >= 0 && !covered && hpf < 0.6f && moba_cheb(u, &g->u[tower]) <= g->u[tower].range + 1;
    if (hpf < 0.3f || exposed) {
        int ability = 0, target = -1;
        me->bot_wp = 0; /* back on the lane from its start */
        if (hpf < 0.5f && moba_ready(g, h, MOBA_MEND)) { ability = MOBA_MEND; target = h; }
        else if (hero >= 0 && hero_d <= 3 && moba_ready(g, h, MOBA_BLINK)) {
            ability = MOBA_BLINK;
            target = MOBA_FIRST_STRUCT + 4 * t + 3; /* toward the own ancient */
        }
        moba_hero_act(e, g, h, moba_home_dir(e, u, t), weak >= 0 && weak_hp <= u->dmg ? weak : -1, ability, target);
        return;
    }
    int ability = 0, target = -1, attack = -1, dir = 0;
    for (int a = t * MOBA_TEAM; a < (t + 1) * MOBA_TEAM && !ability; a++)
        if (g->u[a].alive && g->u[a].hp < 0.5f * g->u[a].hp_max && moba_cheb(u, &g->u[a]) <= MOBA_REACH[MOBA_MEND] &&
            moba_ready(g, h, MOBA_MEND)) {
            ability = MOBA_MEND;
            target = a;
        }
    if (weak >= 0 && weak_hp <= u->dmg * 0.9f) attack = weak;
    else if (hero >= 0 && hero_d <= u->range) attack = hero;
    else if (weak >= 0 && weak_hp > 2.0f * u->dmg) attack = weak;
    else if (tower >= 0 && moba_cheb(u, &g->u[tower]) <= u->range) attack = tower;
    if (!ability && moba_ready(g, h, MOBA_BLAST) && me->mana >= 2.0f * MOBA_COST[MOBA_BLAST]) {
        if (hero >= 0 && hero_d <= MOBA_REACH[MOBA_BLAST]) { ability = MOBA_BLAST; target = hero; }
        else if (creep >= 0 && enemies >= 4) { ability = MOBA_BLAST; target = creep; }
    }
    if (attack < 0) {
        int chase = hero >= 0 ? hero : creep;
        if (chase >= 0 && weak < 0) {
            moba_hero_act(e, g, h, 0, -1, ability, target);
            moba_step_to(e, g, u, g->u[chase].x, g->u[chase].y);
            return;
        }
        int lane = MOBA_BOT_LANE[h % MOBA_TEAM], wp = me->bot_wp;
        const int16_t *w = wp == 0 ? e->spawn[t][lane] : e->way[t][lane][wp - 1];
        if (me->bot_wp < 3 && moba_dist_to(u, w[0], w[1]) <= 1) me->bot_wp++;
        moba_hero_act(e, g, h, 0, -1, ability, target);
        moba_step_to(e, g, u, w[0], w[1]);
        return;
    }
    moba_hero_act(e, g, h, dir, attack, ability, target);
}

/* ------------------------------------------------------------------ observations */

/* Paints the living units onto both teams' views of the padded map (creeps first, heroes last: a
 * hero on a creep's cell shows as the hero); moba_unpaint wipes them off again. Team 1's view is
 * rotated half a turn, so each hero's window is 11 straight row copies. */
static void moba_paint(moba *e, const MobaGame *g) {
    static const int8_t code[6][2] = {{0, 0},
                                      {MOBA_ALLY_HERO, MOBA_ENEMY_HERO},
                                      {MOBA_ALLY_CREEP, MOBA_ENEMY_CREEP},
                                      {MOBA_ALLY_TOWER, MOBA_ENEMY_TOWER},
                                      {MOBA_ALLY_ANCIENT, MOBA_ENEMY_ANCIENT},
                                      {MOBA_NEUTRAL, MOBA_NEUTRAL}};
    int P = e->P, last = P * P - 1;
    e->npainted = 0;
    for (int i = g->top - 1; i >= 0; i--) {
        const MobaUnit *u = &g->u[i];
        if (!u->alive) continue;
        int c = (u->y + MOBA_V) * P + u->x + MOBA_V;
        e->painted[e->npainted++] = c;
        e->cells[0][c] = code[(int)u->kind][u->team & 1];
        e->cells[1][last - c] = code[(int)u->kind][(u->team ^ 1) & 1];
    }
}
static void moba_unpaint(moba *e) {
    int last = e->P * e->P - 1;
    for (int k = 0; k < e->npainted; k++) {
        int c = e->painted[k];
        e->cells[0][c] = e->padded[c];
        e->cells[1][last - c] = e->padded1[last - c];
    }
}

/* Which heroes each team sees: any living unit of the team within MOBA_V cells. */
static void moba_vision(MobaGame *g) {
    for (int j = 0; j < MOBA_AGENTS; j++) {
        const MobaUnit *v = &g->u[j];
        int t = 1 - v->team, seen = 0, n = g->nlive[t];
        const int16_t *xs = g->lx[t], *ys = g->ly[t];
        g->seen[v->team][j] = v->alive;
        if (!v->alive || !moba_any_near(g, t, v->x, v->y, MOBA_V)) n = 0;
        for (int k = 0; k < n; k++) seen |= moba_cheb16(xs[k], ys[k], v->x, v->y) <= MOBA_V;
        g->seen[t][j] = (int8_t)seen;
    }
}

/* Which of team t's towers stand, a bit each. */
static inline int moba_towers(const MobaGame *g, int t) {
    const MobaUnit *s = &g->u[MOBA_FIRST_STRUCT + 4 * t];
    return s[0].alive | s[1].alive << 1 | s[2].alive << 2;
}

/* What every hero's observation shares, once per map: what it sees of hero j (hp, mana and
 * level/10: moba_unit_row's rows 3, 6 and 7), 0.1 / hero j's damage, and each team's game row start. */
static void moba_cards(moba *e, const MobaGame *g) {
    for (int j = 0; j < MOBA_AGENTS; j++) {
        e->card[j][0] = g->u[j].hp / g->u[j].hp_max;
        e->card[j][1] = g->h[j].mana / g->h[j].mana_max;
        e->card[j][2] = (float)g->h[j].level / 10.0f;
        e->tenth_dmg[j] = 0.1f / g->u[j].dmg;
    }
    for (int t = 0; t < 2; t++) { /* game row: time, both ancients' hp, both teams' towers standing */
        float *row = e->team_game[t];
        row[0] = moba_minf((float)g->tick * e->inv_max_steps, 1.0f);
        row[1] = g->u[MOBA_FIRST_STRUCT + 4 * t + 3].hp * e->inv_hp[MOBA_ANCIENT];
        row[2] = g->u[MOBA_FIRST_STRUCT + 4 * (1 - t) + 3].hp * e->inv_hp[MOBA_ANCIENT];
        row[3] = e->thirds[moba_towers(g, t)];
        row[4] = e->thirds[moba_towers(g, 1 - t)];
    }
}

/* Forced inline: 150 calls per map and tick; a call each costs 8% more instructions (callgrind). */
static inline __attribute__((always_inline)) void moba_unit_row(const moba *e, const MobaGame *g, int h, int j, float *row) {
    const MobaUnit *u = &g->u[h], *v = &g->u[j];
    const float *along = e->along[(int)u->team] + MOBA_MAX_SIZE;
    row[0] = 1.0f;
    row[1] = along[v->x - u->x];
    row[2] = along[v->y - u->y];
    row[4] = moba_minf(v->hp * e->tenth_dmg[h], 1.0f); /* hits to kill it, over 10, at most 1 */
    row[5] = moba_cheb(u, v) <= u->range ? 1.0f : 0.0f;
    if (j < MOBA_AGENTS) {
        row[3] = e->card[j][0];
        row[6] = e->card[j][1];
        row[7] = e->card[j][2];
    } else {
        row[3] = v->hp * e->inv_hp[(int)v->kind]; /* only heroes' maximum grows */
        row[6] = v->kind == MOBA_ANCIENT ? 1.0f : 0.0f;
        row[7] = 0.0f;
    }
    row[8] = 0.0f;
    row[9] = v->target == h ? 1.0f : 0.0f;
}

/* Row `row` shows unit j (-1: none, zeros) to hero h; `slot` records which. */
static inline void moba_show(const moba *e, const MobaGame *g, int h, int j, float *row, int16_t *slot) {
    *slot = (int16_t)j;
    if (j >= 0) moba_unit_row(e, g, h, j, row);
    else memset(row, 0, MOBA_FEATS * sizeof(float));
}

/* Writes hero h's observation into `out` and records which unit each row shows. */
static void moba_observe(const moba *e, MobaGame *g, int h, uint8_t *out) {
    float(*rows)[MOBA_FEATS] = (float(*)[MOBA_FEATS])(void *)out; /* rows are 4-byte aligned */
    MobaHero *me = &g->h[h];
    const MobaUnit *u = &g->u[h];
    int t = u->team, o = 1 - t, S = e->S, P = e->P;
    int16_t *slot = me->slot;
    slot[0] = (int16_t)h;
    float *self = rows[0];
    self[0] = (float)u->alive;
    self[1] = e->card[h][0];
    self[2] = e->card[h][1];
    self[3] = e->card[h][2];
    for (int a = 1; a <= 3; a++) self[3 + a] = (float)me->cd[a] * e->inv_cooldown[a];
    self[7] = u->atk_cd == 0 ? 1.0f : 0.0f;
    self[8] = (float)(t ? S - 1 - u->x : u->x) * e->inv_S;
    self[9] = (float)(t ? S - 1 - u->y : u->y) * e->inv_S;
    for (int k = 0, r = 1; k < MOBA_TEAM; k++) {
        int j = t * MOBA_TEAM + k;
        if (j == h) continue;
        moba_show(e, g, h, g->u[j].alive ? j : -1, rows[r], &slot[r]);
        if (!g->u[j].alive) rows[r][8] = (float)g->h[j].respawn * e->inv_respawn;
        r++;
    }
    for (int k = 0; k < MOBA_TEAM; k++) {
        int j = o * MOBA_TEAM + k;
        moba_show(e, g, h, g->seen[t][j] ? j : -1, rows[5 + k], &slot[5 + k]);
    }
    /* The four nearest enemy creeps within sight, by distance then index: distances to every enemy
     * in one vectorized pass (MOBA_FAR for what is not a creep), then the few in sight in order. */
    int any = u->alive ? g->seen[o][h] : moba_any_near(g, o, u->x, u->y, MOBA_V); /* an enemy within sight */
    int n = any ? g->nlive[o] : 0, near[4], near_d[4], found = 0;
    int16_t dist[MOBA_UNITS];
    const int16_t *xs = g->lx[o], *ys = g->ly[o];
    const int8_t *kind = g->lkind[o];
    for (int k = 0; k < n; k++) {
        int16_t d = moba_cheb16(xs[k], ys[k], u->x, u->y);
        dist[k] = kind[k] == MOBA_CREEP ? d : (int16_t)MOBA_FAR;
    }
    for (int k = 0; k < n; k++) {
        int d = dist[k];
        if (d > MOBA_V || (found == 4 && d >= near_d[3])) continue;
        int p = found < 4 ? found++ : 3;
        while (p > 0 && near_d[p - 1] > d) {
            near[p] = near[p - 1];
            near_d[p] = near_d[p - 1];
            p--;
        }
        near[p] = g->live[o][k];
        near_d[p] = d;
    }
    for (int k = 0; k < 4; k++) moba_show(e, g, h, k < found ? near[k] : -1, rows[10 + k], &slot[10 + k]);
    int best = -1, best_d = 1 << 30; /* the nearest enemy structure, at any distance */
    for (int j = MOBA_FIRST_STRUCT + 4 * o, d; j < MOBA_FIRST_STRUCT + 4 * o + 4; j++)
        if (g->u[j].alive && (d = moba_cheb(u, &g->u[j])) < best_d) { best = j; best_d = d; }
    moba_show(e, g, h, best, rows[14], &slot[14]);
    int camp = -1, camp_d = MOBA_V + 1;
    for (int c = MOBA_FIRST_CAMP, d; c < MOBA_FIRST_CREEP; c++)
        if (g->u[c].alive && (d = moba_cheb(u, &g->u[c])) < camp_d) { camp = c; camp_d = d; }
    moba_show(e, g, h, camp, rows[15], &slot[15]);
    float *game = rows[16];
    slot[16] = -1;
    game[8] = game[9] = 0.0f;
    memcpy(game, e->team_game[t], 5 * sizeof(float));
    game[5] = moba_minf(me->gold * (1.0f / 2000.0f), 1.0f);
    float lo = 50.0f * (float)(me->level * (me->level - 1)), hi = 50.0f * (float)(me->level * (me->level + 1));
    game[6] = me->level >= MOBA_MAX_LEVEL ? 1.0f : (me->xp - lo) / (hi - lo);
    game[7] = (float)me->respawn * e->inv_respawn;
    /* The window's corner in the team's view: team 1's is the rotated image of team 0's. */
    int corner = u->y * P + u->x;
    if (t == 1) corner = P * P - 1 - corner - (MOBA_WIN - 1) * (P + 1);
    const int8_t *c = e->cells[t] + corner;
    int8_t *win = (int8_t *)(out + MOBA_ENTITY_BYTES);
    /* 16-byte copies, each row's tail overwritten by the next (the padded map has the bytes to read). */
    for (int r = 0; r < MOBA_WIN - 1; r++) memcpy(win + r * MOBA_WIN, c + r * P, 16);
    memcpy(win + (MOBA_WIN - 1) * MOBA_WIN, c + (MOBA_WIN - 1) * P, MOBA_WIN);
    memset(win + MOBA_WIN * MOBA_WIN, 0, MOBA_OBS_BYTES - MOBA_ENTITY_BYTES - MOBA_WIN * MOBA_WIN);
}

/* The heroes and units tables; a dead unit's row is written once (it does not change until it respawns). */
static void moba_write_tables(const moba *e, MobaGame *g, int m) {
    float *hx = e->x_heroes + (size_t)m * MOBA_AGENTS * MOBA_HERO_COLS;
    for (int i = 0; i < MOBA_AGENTS; i++, hx += MOBA_HERO_COLS) {
        const MobaUnit *u = &g->u[i];
        const MobaHero *h = &g->h[i];
        float row[MOBA_HERO_COLS] = {(float)u->team, (float)u->x, (float)u->y, u->hp, u->hp_max, h->mana,
                                     h->mana_max, (float)h->level, h->xp, h->gold, (float)h->cd[1],
                                     (float)h->cd[2], (float)h->cd[3], (float)h->respawn, (float)u->alive,
                                     (float)h->last_hits, (float)h->camp_hits, (float)h->kills,
                                     (float)h->deaths, (float)h->towers};
        memcpy(hx, row, sizeof(row));
    }
    float *ux = e->x_units + (size_t)m * MOBA_OTHERS * MOBA_UNIT_COLS;
    /* Slots from `top` up have not lived this game: written (as dead) at its first tick, then left. */
    int end = g->tick == 0 ? MOBA_UNITS : g->top;
    for (int i = MOBA_AGENTS; i < end; i++, ux += MOBA_UNIT_COLS) {
        MobaUnit *u = &g->u[i];
        if (u->shown) continue;
        u->shown = !u->alive;
        float row[MOBA_UNIT_COLS] = {(float)u->kind, (float)u->team, (float)u->x, (float)u->y, u->hp,
                                     u->hp_max, (float)u->alive, (float)u->target};
        memcpy(ux, row, sizeof(row));
    }
}

/* The extras: the game row every tick, the tables when asked for (parameter extras). */
static void moba_write_extras(const moba *e, MobaGame *g, int m) {
    if (e->tables) moba_write_tables(e, g, m);
    int creeps = 0; /* the live table is up to date (moba_emit refreshed it) */
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < g->nlive[t]; k++) creeps += g->lkind[t][k] == MOBA_CREEP;
    float game[MOBA_GAME_COLS] = {(float)g->tick, (float)g->winner, (float)creeps, (float)g->deaths,
                                  (float)g->waves, (float)g->result, 0, 0};
    memcpy(e->x_game + (size_t)m * MOBA_GAME_COLS, game, sizeof(game));
}

/* Observations, masks and extras of map m as it stands. */
static void moba_emit(moba *e, MobaGame *g, int m, uint8_t *obs) {
    moba_refresh_live(g);
    moba_vision(g);
    moba_cards(e, g);
    moba_paint(e, g);
    for (int h = 0; h < MOBA_AGENTS; h++) {
        size_t i = (size_t)m * MOBA_AGENTS + h;
        moba_observe(e, g, h, obs + i * MOBA_OBS_BYTES);
        e->masks[i] = (uint8_t)(e->control[h / MOBA_TEAM] == MOBA_AGENT && g->u[h].alive);
    }
    moba_unpaint(e);
    moba_write_extras(e, g, m);
}

/* ------------------------------------------------------------------ reset and step */

static void moba_reset(moba *e, uint64_t seed) {
    for (int m = 0; m < e->num_envs; m++) {
        MobaGame *g = &e->games[m];
        rng_seed(&g->rng, seed, (uint64_t)m);
        g->result = -1;
        moba_new_game(e, g);
        memcpy(e->x_terrain + (size_t)m * e->S * e->S, e->terrain, (size_t)e->S * e->S);
        moba_emit(e, g, m, e->obs);
        for (int h = 0; h < MOBA_AGENTS; h++) {
            size_t i = (size_t)m * MOBA_AGENTS + h;
            e->rewards[i] = 0.0f;
            e->terminals[i] = e->truncations[i] = 0;
        }
    }
    memset(&e->log, 0, sizeof(Log));
}

static void moba_tick_heroes(moba *e, MobaGame *g, int m) {
    for (int h = 0; h < MOBA_AGENTS; h++) {
        MobaUnit *u = &g->u[h];
        MobaHero *me = &g->h[h];
        if (u->atk_cd > 0) u->atk_cd--;
        for (int a = 1; a <= 3; a++)
            if (me->cd[a] > 0) me->cd[a]--;
        if (!u->alive) {
            if (--me->respawn <= 0) {
                me->respawn = 0;
                moba_place_hero(e, g, h);
            }
            continue;
        }
        int t = u->team;
        float heal = moba_dist_to(u, e->fountain[t][0], e->fountain[t][1]) <= 2 ? 0.04f : 0.0f;
        u->hp = moba_minf(u->hp + 0.2f + heal * u->hp_max, u->hp_max);
        me->mana = moba_minf(me->mana + 0.5f + heal * me->mana_max, me->mana_max);
    }
    for (int h = 0; h < MOBA_AGENTS; h++) {
        if (!g->u[h].alive || g->h[h].respawn) continue;
        int who = e->control[h / MOBA_TEAM];
        if (who == MOBA_AGENT) moba_agent_act(e, g, h, e->actions + ((size_t)m * MOBA_AGENTS + h) * 4);
        else if (who == MOBA_SCRIPTED) moba_bot_act(e, g, h);
        else moba_random_act(e, g, h);
    }
}

static void moba_step(moba *e) {
    for (int m = 0; m < e->num_envs; m++) {
        MobaGame *g = &e->games[m];
        memset(g->reward, 0, sizeof(g->reward));
        /* The live table is the one the last moba_emit built: nothing has moved since. */
        moba_tick_heroes(e, g, m);
        for (int i = MOBA_FIRST_STRUCT; i < g->top; i++) {
            MobaUnit *u = &g->u[i];
            if (!u->alive) continue;
            if (u->atk_cd > 0) u->atk_cd--;
            if (u->kind == MOBA_CREEP) moba_creep_act(e, g, i);
            else if (u->kind == MOBA_CAMP) moba_camp_act(e, g, i);
            else moba_tower_act(e, g, i);
        }
        for (int c = 0; c < MOBA_CAMPS; c++)
            if (!g->u[MOBA_FIRST_CAMP + c].alive && --g->camp_timer[c] <= 0) moba_spawn_camp(g, e, c);
        if (g->tick % e->wave_interval == 0 && e->wave_size > 0) moba_spawn_wave(e, g);
        g->tick++;
        int ended = g->winner >= 0, truncated = !ended && g->tick >= e->max_steps;
        for (int h = 0; h < MOBA_AGENTS; h++) {
            if (ended && g->winner < 2) g->reward[h] += (h / MOBA_TEAM == g->winner ? 1.0f : -1.0f) * e->w_win;
            size_t i = (size_t)m * MOBA_AGENTS + h;
            int agent = e->control[h / MOBA_TEAM] == MOBA_AGENT;
            float r = agent ? g->reward[h] : 0.0f;
            g->h[h].ret += r;
            e->rewards[i] = r;
            e->terminals[i] = (uint8_t)(agent && ended);
            e->truncations[i] = (uint8_t)(agent && truncated);
            if (agent && (ended || truncated))
                log_episode(&e->log, (double)g->h[h].ret, (double)g->tick, ended && g->winner == h / MOBA_TEAM);
        }
        if (truncated) {
            moba_emit(e, g, m, e->final_obs);
            /* Only truncated rows' final observations are defined; the rest stay as they were. */
        }
        if (ended || truncated) {
            g->result = ended ? g->winner : 3;
            moba_new_game(e, g);
        }
        moba_emit(e, g, m, e->obs);
    }
}

#endif

/* Registers the env with the engine: outside the guard on purpose (see c/registry.h). */
ENV_KIND(moba)
