/* The actor wire protocol: the one definition both sides take.
 *
 * The C step loop (envs/_native.c, serve) reads and writes these bytes; the Python
 * side (actors/wire.py, used by actors/pool.py and actors/worker.py) reads its
 * constants from this header through the extension (envs._native.wire()), so the two
 * cannot disagree. tests/actors/test_wire.py checks that they encode alike.
 *
 * Per actor and generation, two named FIFOs (the doorbell) in the pool's private
 * directory; all integers little-endian, no padding:
 *   go, pool -> actor:
 *     'S' + part (uint16)   step that part of the actor's envs with the actions
 *                           already in the arena                         (3 bytes)
 *     'R' + seed (uint64)   reset every part (part j from part_seed(seed, j)) (9 bytes)
 *     'Q'                   quit (end of file, once the pool closed it, also quits)
 *   done, actor -> pool, one answer per command, in order:
 *     'D'                   done, no episode ended                       (1 byte)
 *     'e' + episodes (uint32) + the sums over them of WIRE_STATS (float64 each):
 *                           the native envs' episode statistics          (29 bytes)
 *     'd' + length (uint32) + JSON [episodes, {stat: mean}]: any other statistics
 * The episode summaries ride the doorbell, not ZeroMQ: with thousands of envs an
 * episode ends on nearly every step.
 * Over ZeroMQ (the actor's DEALER, identity "<actor>:<generation>", to the pool's
 * ROUTER), one frame each, actor -> pool:
 *     'H'                   hello: envs built, observations ready (answers the
 *                           actor's start, like one done answer)
 *     'E' + traceback       the actor is about to die
 * No data crosses either channel: the arena holds it.
 */
#ifndef APPLIANCE_WIRE_H
#define APPLIANCE_WIRE_H

#define WIRE_STEP 'S'
#define WIRE_STEP_SIZE 3
#define WIRE_RESET 'R'
#define WIRE_RESET_SIZE 9
#define WIRE_QUIT 'Q'
#define WIRE_QUIT_SIZE 1

#define WIRE_DONE 'D'
#define WIRE_EPISODES 'e'
#define WIRE_COUNT_BYTES 4 /* episodes in 'e', length in 'd' */
#define WIRE_NUM_STATS 3
/* The sums in an 'e' answer, in order: the Log fields of c/env.h. */
#define WIRE_STATS "episode_return", "episode_length", "score"
#define WIRE_EPISODES_SIZE (1 + WIRE_COUNT_BYTES + 8 * WIRE_NUM_STATS)
#define WIRE_JSON 'd'

#define WIRE_HELLO 'H'
#define WIRE_ERROR 'E'

#endif
