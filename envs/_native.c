/* The generic engine: exposes every native env header to Python as one type.
 * It knows nothing about any env beyond the contract in c/env.h; the envs it serves
 * are the list in c/registry.h. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "c/env.h"
#include "c/wire.h"

typedef struct {
    const char *name;
    const ParamSpec *params;
    const ExtraSpec *extras;
    size_t state_size;
    size_t log_offset;
    void (*layout)(const double *, Layout *);
    int (*init)(void *, const Buffers *, char *, size_t);
    void (*reset)(void *, uint64_t);
    void (*step)(void *);
    void (*free)(void *);
} EnvKind;

/* First reading of the registry: each env's entry, NAME_kind, with type-erased calls. */
#undef ENV_KIND
#define ENV_KIND(NAME)                                                                       \
    static int NAME##_init_v(void *e, const Buffers *b, char *err, size_t n) {              \
        return NAME##_init((NAME *)e, b, err, n);                                            \
    }                                                                                        \
    static void NAME##_reset_v(void *e, uint64_t seed) { NAME##_reset((NAME *)e, seed); }   \
    static void NAME##_step_v(void *e) { NAME##_step((NAME *)e); }                          \
    static void NAME##_free_v(void *e) { NAME##_free((NAME *)e); }                          \
    static const EnvKind NAME##_kind = {#NAME, NAME##_PARAMS, NAME##_EXTRAS, sizeof(NAME),  \
                                        offsetof(NAME, log), NAME##_layout, NAME##_init_v,  \
                                        NAME##_reset_v, NAME##_step_v, NAME##_free_v};
#include "c/registry.h"
#undef ENV_KIND

/* Second reading: the table of every env (the headers' bodies are skipped by their guards). */
#define ENV_KIND(NAME) &NAME##_kind,
static const EnvKind *KINDS[] = {
#include "c/registry.h"
};
#undef ENV_KIND

#define NUM_KINDS ((int)(sizeof(KINDS) / sizeof(KINDS[0])))
#define MAX_PARAMS 32

static int count_params(const EnvKind *k) { int n = 0; while (k->params[n].name) n++; return n; }
static int count_extras(const EnvKind *k) { int n = 0; while (k->extras[n].name) n++; return n; }

static const EnvKind *find_kind(const char *name) {
    for (int i = 0; i < NUM_KINDS; i++)
        if (strcmp(KINDS[i]->name, name) == 0) return KINDS[i];
    PyErr_Format(PyExc_ValueError, "unknown native env '%s'", name);
    return NULL;
}

/* Parses and range-checks a params sequence in the kind's order. */
static int read_params(const EnvKind *k, PyObject *seq, double *out) {
    int n = count_params(k);
    PyObject *fast = PySequence_Fast(seq, "params must be a sequence of numbers");
    if (!fast) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s takes %d params, got %zd", k->name, n,
                     PySequence_Fast_GET_SIZE(fast));
        Py_DECREF(fast);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const ParamSpec *p = &k->params[i];
        double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i));
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s: parameter '%s' must be a number", k->name, p->name);
            Py_DECREF(fast);
            return -1;
        }
        if (!(v >= p->min && v <= p->max) || (p->integer && v != (double)(long long)v)) {
            /* PyErr_Format has no %g: the bounds go in as Python numbers (ints for whole-number params). */
            int whole = v > -1e18 && v < 1e18 && v == (double)(long long)v; /* shown as 2, not 2.0 */
            PyObject *got = whole ? PyLong_FromDouble(v) : PyFloat_FromDouble(v);
            PyObject *lo = p->integer ? PyLong_FromDouble(p->min) : PyFloat_FromDouble(p->min);
            PyObject *hi = p->integer ? PyLong_FromDouble(p->max) : PyFloat_FromDouble(p->max);
            if (got && lo && hi)
                PyErr_Format(PyExc_ValueError, "%s: parameter '%s' must be %s in [%R, %R], got %R",
                             k->name, p->name, p->integer ? "a whole number" : "a number", lo, hi, got);
            Py_XDECREF(got);
            Py_XDECREF(lo);
            Py_XDECREF(hi);
            Py_DECREF(fast);
            return -1;
        }
        out[i] = v;
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *int_tuple(const int *values, int n) {
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    for (int i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, PyLong_FromLong(values[i]));
    return t;
}

/* A layout the engine can serve: action and observation parts within their bounds. */
static int check_layout(const EnvKind *k, const Layout *L) {
    if (L->action_dims < 0 || L->action_dims > MAX_ACTION_DIMS || L->obs_parts < 0 ||
        L->obs_parts > MAX_OBS_PARTS || L->obs_ndim < 1 || L->obs_ndim > MAX_OBS_DIMS) {
        PyErr_Format(PyExc_RuntimeError, "%s declares an invalid layout", k->name);
        return -1;
    }
    for (int i = 0; i < L->action_dims; i++)
        if (L->action_nvec[i] < 1) {
            PyErr_Format(PyExc_RuntimeError, "%s declares an empty action dimension", k->name);
            return -1;
        }
    for (int i = 0; i < L->obs_parts; i++)
        if (L->obs_part[i].ndim < 1 || L->obs_part[i].ndim > MAX_OBS_DIMS) {
            PyErr_Format(PyExc_RuntimeError, "%s declares an invalid observation part", k->name);
            return -1;
        }
    return 0;
}

static PyObject *layout_dict(const Layout *L) {
    PyObject *shape = int_tuple(L->obs_shape, L->obs_ndim);
    PyObject *nvec = int_tuple(L->action_nvec, L->action_dims);
    PyObject *extra = PyTuple_New(MAX_EXTRAS);
    PyObject *parts = PyList_New(L->obs_parts);
    if (!shape || !nvec || !extra || !parts) goto fail;
    for (int i = 0; i < MAX_EXTRAS; i++)
        PyTuple_SET_ITEM(extra, i, PyLong_FromLongLong(L->extra_elems[i]));
    for (int i = 0; i < L->obs_parts; i++) {
        const ObsPart *p = &L->obs_part[i];
        char dt[2] = {p->dtype, 0};
        PyObject *part = Py_BuildValue("(ssNdd)", p->name, dt, int_tuple(p->shape, p->ndim), p->low, p->high);
        if (!part) goto fail;
        PyList_SET_ITEM(parts, i, part);
    }
    char dtype[2] = {L->obs_dtype, 0};
    return Py_BuildValue("{s:i,s:N,s:s,s:d,s:d,s:i,s:N,s:N,s:N}", "agents_per_env", L->agents_per_env,
                         "obs_shape", shape, "obs_dtype", dtype, "obs_low", L->obs_low,
                         "obs_high", L->obs_high, "num_actions", L->num_actions, "action_nvec", nvec,
                         "obs_parts", parts, "extra_elems", extra);
fail:
    Py_XDECREF(shape);
    Py_XDECREF(nvec);
    Py_XDECREF(extra);
    Py_XDECREF(parts);
    return NULL;
}

/* ------------------------------------------------------------------ Env type */

typedef struct {
    PyObject_HEAD
    const EnvKind *kind;
    void *state;
    int ready;
    int num_envs, num_agents;
    Layout layout;
    double params[MAX_PARAMS];
    Py_buffer views[7];   /* obs, actions, rewards, terminals, truncations, masks, final obs */
    int nviews;
    Py_buffer extras[MAX_EXTRAS];
    int nextras;
    void *extra_ptrs[MAX_EXTRAS];
} EnvObject;

static void Env_release(EnvObject *self) {
    if (self->ready) self->kind->free(self->state);
    self->ready = 0;
    PyMem_Free(self->state);
    self->state = NULL;
    for (int i = 0; i < self->nviews; i++) PyBuffer_Release(&self->views[i]);
    for (int i = 0; i < self->nextras; i++) PyBuffer_Release(&self->extras[i]);
    self->nviews = self->nextras = 0;
}

static void Env_dealloc(EnvObject *self) {
    Env_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int get_view(PyObject *obj, Py_buffer *view, const char *what, Py_ssize_t nbytes) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "buffer '%s' must be a writable C-contiguous array", what);
        return -1;
    }
    if (view->len != nbytes) {
        PyErr_Format(PyExc_ValueError, "buffer '%s' has %zd bytes, expected %zd", what, view->len,
                     nbytes);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static Py_ssize_t typecode_size(char c) {
    switch (c) {
        case 'd': return 8;
        case 'f': case 'i': return 4;
        case 'b': case 'B': return 1;
    }
    return 0;
}

static int Env_init(EnvObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"name", "num_envs", "params", "observations", "actions", "rewards",
                            "terminals", "truncations", "masks", "final_observations", "extras",
                            NULL};
    const char *name;
    int num_envs;
    PyObject *params, *bufs[7], *extras;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "siOOOOOOOOO", names, &name, &num_envs, &params,
                                     &bufs[0], &bufs[1], &bufs[2], &bufs[3], &bufs[4], &bufs[5],
                                     &bufs[6], &extras))
        return -1;
    Env_release(self);
    const EnvKind *k = find_kind(name);
    if (!k) return -1;
    if (num_envs < 1) {
        PyErr_Format(PyExc_ValueError, "%s: parameter 'num_envs' must be >= 1, got %d", name,
                     num_envs);
        return -1;
    }
    if (count_params(k) > MAX_PARAMS || count_extras(k) > MAX_EXTRAS) {
        PyErr_Format(PyExc_RuntimeError, "%s declares too many params or extras", name);
        return -1;
    }
    if (read_params(k, params, self->params) < 0) return -1;
    self->kind = k;
    memset(&self->layout, 0, sizeof(Layout));
    k->layout(self->params, &self->layout);
    const Layout *L = &self->layout;
    if (check_layout(k, L) < 0) return -1;
    long long agents = (long long)num_envs * L->agents_per_env;
    if (L->agents_per_env < 1 || agents > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: num_envs=%d gives an invalid agent count", name,
                     num_envs);
        return -1;
    }
    self->num_envs = num_envs;
    self->num_agents = (int)agents;
    Py_ssize_t obs_elems = 1;
    for (int i = 0; i < L->obs_ndim; i++) obs_elems *= L->obs_shape[i];
    const char *what[7] = {"observations", "actions", "rewards", "terminals", "truncations",
                           "masks", "final_observations"};
    Py_ssize_t obs_bytes = agents * obs_elems * typecode_size(L->obs_dtype);
    Py_ssize_t act_bytes = agents * 4 * (L->action_dims > 0 ? L->action_dims : 1);
    Py_ssize_t sizes[7] = {obs_bytes, act_bytes, agents * 4, agents, agents, agents, obs_bytes};
    for (int i = 0; i < 7; i++) {
        if (get_view(bufs[i], &self->views[i], what[i], sizes[i]) < 0) return -1;
        self->nviews = i + 1;
    }
    int nx = count_extras(k);
    PyObject *xfast = PySequence_Fast(extras, "extras must be a sequence of arrays");
    if (!xfast) return -1;
    if (PySequence_Fast_GET_SIZE(xfast) != nx || nx > MAX_EXTRAS) {
        PyErr_Format(PyExc_ValueError, "%s takes %d extra buffers, got %zd", name, nx,
                     PySequence_Fast_GET_SIZE(xfast));
        Py_DECREF(xfast);
        return -1;
    }
    for (int i = 0; i < nx; i++) {
        const ExtraSpec *x = &k->extras[i];
        if (get_view(PySequence_Fast_GET_ITEM(xfast, i), &self->extras[i], x->name,
                     (Py_ssize_t)num_envs * L->extra_elems[i] * typecode_size(x->dtype)) < 0) {
            Py_DECREF(xfast);
            return -1;
        }
        self->nextras = i + 1;
        self->extra_ptrs[i] = self->extras[i].buf;
    }
    Py_DECREF(xfast);

    self->state = PyMem_Calloc(1, k->state_size);
    if (!self->state) {
        PyErr_NoMemory();
        return -1;
    }
    Buffers b = {num_envs, self->num_agents, self->params, self->views[0].buf,
                 (const int32_t *)self->views[1].buf, (float *)self->views[2].buf,
                 (uint8_t *)self->views[3].buf, (uint8_t *)self->views[4].buf,
                 (uint8_t *)self->views[5].buf, self->views[6].buf, self->extra_ptrs};
    char err[512] = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = k->init(self->state, &b, err, sizeof(err));
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        PyErr_SetString(PyExc_ValueError, err[0] ? err : "env init failed");
        return -1;
    }
    self->ready = 1;
    return 0;
}

static int check_ready(EnvObject *self) {
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "env is closed or was never initialized");
        return -1;
    }
    return 0;
}

static PyObject *Env_reset(EnvObject *self, PyObject *arg) {
    if (check_ready(self) < 0) return NULL;
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    Py_BEGIN_ALLOW_THREADS
    self->kind->reset(self->state, (uint64_t)seed);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *Env_step(EnvObject *self, PyObject *Py_UNUSED(ignored)) {
    if (check_ready(self) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    self->kind->step(self->state);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* Steps n times with the actions as they are: the benchmark's inner loop. */
static PyObject *Env_step_n(EnvObject *self, PyObject *arg) {
    if (check_ready(self) < 0) return NULL;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    Py_BEGIN_ALLOW_THREADS
    for (long i = 0; i < n; i++) self->kind->step(self->state);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* Returns the episode sums since the last call and clears them. */
static PyObject *Env_take_log(EnvObject *self, PyObject *Py_UNUSED(ignored)) {
    if (check_ready(self) < 0) return NULL;
    Log *log = (Log *)((char *)self->state + self->kind->log_offset);
    PyObject *d = Py_BuildValue("{s:d,s:d,s:d,s:d}", "episodes", log->episodes, "episode_return",
                                log->episode_return, "episode_length", log->episode_length,
                                "score", log->score);
    memset(log, 0, sizeof(Log));
    return d;
}

static PyObject *Env_close(EnvObject *self, PyObject *Py_UNUSED(ignored)) {
    Env_release(self);
    Py_RETURN_NONE;
}

static PyMethodDef Env_methods[] = {
    {"reset", (PyCFunction)Env_reset, METH_O, "reset(seed): reseed every instance and reset it"},
    {"step", (PyCFunction)Env_step, METH_NOARGS, "step(): step every instance (GIL released)"},
    {"step_n", (PyCFunction)Env_step_n, METH_O, "step_n(n): n steps with fixed actions"},
    {"take_log", (PyCFunction)Env_take_log, METH_NOARGS, "episode sums since the last call"},
    {"close", (PyCFunction)Env_close, METH_NOARGS, "free native memory and release buffers"},
    {NULL},
};

static PyTypeObject EnvType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "envs._native.Env",
    .tp_basicsize = sizeof(EnvObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A vector of native env instances stepping into caller-owned buffers.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Env_init,
    .tp_dealloc = (destructor)Env_dealloc,
    .tp_methods = Env_methods,
};

/* ------------------------------------------------------------------ module */

static PyObject *mod_kinds(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored)) {
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    for (int i = 0; i < NUM_KINDS; i++) {
        const EnvKind *k = KINDS[i];
        int np = count_params(k), nx = count_extras(k);
        PyObject *params = PyList_New(np), *extras = PyList_New(nx);
        if (!params || !extras) goto fail_lists;
        for (int j = 0; j < np; j++) {
            const ParamSpec *p = &k->params[j];
            PyList_SET_ITEM(params, j, Py_BuildValue("(sdddOs)", p->name, p->value, p->min, p->max,
                                                     p->integer ? Py_True : Py_False, p->doc));
        }
        for (int j = 0; j < nx; j++) {
            const ExtraSpec *x = &k->extras[j];
            char dt[2] = {x->dtype, 0};
            PyList_SET_ITEM(extras, j, Py_BuildValue("(ss)", x->name, dt));
        }
        PyObject *entry = Py_BuildValue("{s:N,s:N}", "params", params, "extras", extras);
        if (!entry || PyDict_SetItemString(out, k->name, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(entry);
        continue;
    fail_lists:
        Py_XDECREF(params);
        Py_XDECREF(extras);
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *mod_layout(PyObject *Py_UNUSED(m), PyObject *args) {
    const char *name;
    PyObject *params;
    double values[MAX_PARAMS];
    if (!PyArg_ParseTuple(args, "sO", &name, &params)) return NULL;
    const EnvKind *k = find_kind(name);
    if (!k) return NULL;
    if (count_params(k) > MAX_PARAMS) return PyErr_Format(PyExc_RuntimeError, "too many params");
    if (read_params(k, params, values) < 0) return NULL;
    Layout L;
    memset(&L, 0, sizeof(L));
    k->layout(values, &L);
    if (check_layout(k, &L) < 0) return NULL;
    return layout_dict(&L);
}

/* ------------------------------------------------------------ actor loop */

/* The hot loop of an actor process (actors/worker.py) stepping native envs, with the
 * GIL released: no Python runs between steps. It speaks the step command and the
 * 'D' and 'e' answers of the wire protocol (c/wire.h); anything else (reset, quit, a
 * part out of range) goes back to Python unread.
 * go_fd must be non-blocking: the loop reads first (the next command is usually
 * waiting) and sleeps in poll(timeout_ms) only when there is none.
 * Returns None after timeout_ms without a command (or on a signal: the worker checks
 * its parent and its signals, then calls again), b"" at end of file, else the unread
 * bytes, starting with the first command it does not handle. */

#define SERVE_BUF 8192

static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* The done answer for the step just taken; clears the env's log. Returns its length. */
static int take_answer(EnvObject *env, unsigned char *out) {
    Log *log = (Log *)((char *)env->state + env->kind->log_offset);
    if (log->episodes <= 0) {
        out[0] = WIRE_DONE;
        return 1;
    }
    double sums[WIRE_NUM_STATS] = {log->episode_return, log->episode_length, log->score};
    out[0] = WIRE_EPISODES;
    put_le(out + 1, (uint64_t)log->episodes, WIRE_COUNT_BYTES);
    for (int i = 0; i < WIRE_NUM_STATS; i++) {
        uint64_t bits;
        memcpy(&bits, &sums[i], 8);
        put_le(out + 1 + WIRE_COUNT_BYTES + 8 * i, bits, 8);
    }
    memset(log, 0, sizeof(Log));
    return WIRE_EPISODES_SIZE;
}

enum { SERVE_TIMEOUT, SERVE_EOF, SERVE_OTHER, SERVE_ERROR };

static PyObject *mod_serve(PyObject *Py_UNUSED(m), PyObject *args) {
    PyObject *seq;
    int go, done, timeout_ms;
    if (!PyArg_ParseTuple(args, "Oiii", &seq, &go, &done, &timeout_ms)) return NULL;
    unsigned char buf[SERVE_BUF];
    size_t len = 0, pos = 0;
    /* A tuple of our own: nothing can change it while the GIL is released. */
    PyObject *fast = PySequence_Tuple(seq);
    if (!fast) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fast);
    PyObject **items = &PyTuple_GET_ITEM(fast, 0);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyObject_TypeCheck(items[i], &EnvType) || !((EnvObject *)items[i])->ready) {
            Py_DECREF(fast);
            return PyErr_Format(PyExc_TypeError, "serve: envs[%zd] is not an open native env", i);
        }
    }
    int status, err = 0;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        if (pos < len && buf[pos] != WIRE_STEP) {
            status = SERVE_OTHER;
            break;
        }
        if (len - pos >= WIRE_STEP_SIZE) {
            Py_ssize_t part = buf[pos + 1] | (buf[pos + 2] << 8);
            if (part >= n) {
                status = SERVE_OTHER;
                break;
            }
            pos += WIRE_STEP_SIZE;
            EnvObject *env = (EnvObject *)items[part];
            env->kind->step(env->state);
            unsigned char answer[WIRE_EPISODES_SIZE];
            int size = take_answer(env, answer);
            ssize_t w;
            do w = write(done, answer, (size_t)size); while (w < 0 && errno == EINTR);
            if (w != size) {  /* a pipe write under PIPE_BUF is all or nothing */
                err = w < 0 ? errno : EIO;
                status = SERVE_ERROR;
                break;
            }
            continue;
        }
        /* Need more bytes: keep the partial command and read. */
        memmove(buf, buf + pos, len - pos);
        len -= pos;
        pos = 0;
        ssize_t r = read(go, buf + len, SERVE_BUF - len);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {go, POLLIN, 0};
            int ready = poll(&pfd, 1, timeout_ms);
            if (ready == 0 || (ready < 0 && errno == EINTR)) {
                status = SERVE_TIMEOUT;  /* Python checks its parent (and signals), calls again */
                break;
            }
            if (ready < 0) {
                err = errno;
                status = SERVE_ERROR;
                break;
            }
            r = read(go, buf + len, SERVE_BUF - len);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        } else if (r < 0 && errno == EINTR) {
            status = SERVE_TIMEOUT;
            break;
        }
        if (r < 0) {
            err = errno;
            status = SERVE_ERROR;
            break;
        }
        if (r == 0) {
            status = SERVE_EOF;
            break;
        }
        len += (size_t)r;
    }
    Py_END_ALLOW_THREADS
    Py_DECREF(fast);
    if (status == SERVE_ERROR) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (status == SERVE_TIMEOUT && pos == len) Py_RETURN_NONE;
    if (status == SERVE_EOF && pos == len) return PyBytes_FromStringAndSize("", 0);
    return PyBytes_FromStringAndSize((const char *)buf + pos, (Py_ssize_t)(len - pos));
}

/* The wire protocol's constants (c/wire.h), for actors/wire.py. */
static PyObject *mod_wire(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored)) {
    static const char *stats[] = {WIRE_STATS};
    PyObject *names = PyTuple_New(WIRE_NUM_STATS);
    if (!names) return NULL;
    for (int i = 0; i < WIRE_NUM_STATS; i++) {
        PyObject *name = PyUnicode_FromString(stats[i]);
        if (!name) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, i, name);
    }
    return Py_BuildValue("{s:c,s:i,s:c,s:i,s:c,s:i,s:c,s:c,s:i,s:N,s:i,s:c,s:c,s:c}",
                         "step", WIRE_STEP, "step_size", WIRE_STEP_SIZE, "reset", WIRE_RESET,
                         "reset_size", WIRE_RESET_SIZE, "quit", WIRE_QUIT, "quit_size", WIRE_QUIT_SIZE,
                         "done", WIRE_DONE, "episodes", WIRE_EPISODES, "count_bytes", WIRE_COUNT_BYTES,
                         "stats", names, "episodes_size", WIRE_EPISODES_SIZE, "json", WIRE_JSON,
                         "hello", WIRE_HELLO, "error", WIRE_ERROR);
}

static PyMethodDef module_methods[] = {
    {"kinds", mod_kinds, METH_NOARGS, "every native env with its params and extra buffers"},
    {"layout", mod_layout, METH_VARARGS, "layout(name, params): agents per env and spaces"},
    {"serve", mod_serve, METH_VARARGS,
     "serve(envs, go_fd, done_fd, timeout_ms): an actor's step loop (actors.worker)"},
    {"wire", mod_wire, METH_NOARGS, "the actor wire protocol's constants (c/wire.h)"},
    {NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, .m_name = "envs._native",
                                       .m_doc = "Native C environments.", .m_size = -1,
                                       .m_methods = module_methods};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&EnvType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&EnvType);
    if (PyModule_AddObject(m, "Env", (PyObject *)&EnvType) < 0) {
        Py_DECREF(&EnvType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
