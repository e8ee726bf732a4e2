/* The native envs: one line per env, the #include of its header (see env.h).
 *
 * No include guard, on purpose: the engine (envs/_native.c) reads this list twice.
 * Every env header ends with ENV_KIND(NAME), outside its own include guard, so that
 * line expands on both readings: the first time to the env's entry in the engine
 * (the header's body is read then too), the second time, with the body skipped by its
 * guard, to a pointer to that entry in the table of every env. Anywhere else
 * ENV_KIND expands to nothing (c/env.h), so a header also builds on its own.
 */
#include "cartpole.h"
#include "grid.h"
#include "moba.h"
#include "snake.h"
