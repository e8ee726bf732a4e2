# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled form of :mod:`envs.emulation.steploop`: same arguments, same effects.

Per env and step it calls ``env.step`` through the C API, stores the reward, and
copies each observation leaf into its arena row with one ``memcpy`` when the leaf is
a C-contiguous array of the storage dtype (or a Python/numpy integer for an int32
leaf), and copies nothing when the array is the row's own view (an env that writes
its observation in place, :func:`envs.emulation.vector.observe_in_place`). Anything
else (a dtype to cast, a strided array, a nested structure) goes through the row's
:class:`~envs.emulation.layout.Packer`, so every observation lands exactly as the
Python path writes it.
"""

from cpython.buffer cimport PyBUF_STRIDES, PyBuffer_IsContiguous, PyBuffer_Release, PyObject_GetBuffer
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport int32_t
from libc.string cimport memcpy

import numpy as np

cdef object NDARRAY = np.ndarray
cdef object INT32 = np.dtype(np.int32)
cdef object INTEGER = np.integer
cdef enum:
    MEMCPY = 0  # a C-contiguous array of the leaf's storage dtype
    INT32_SCALAR = 1  # an int for an int32 leaf (a Discrete)


cdef class Rows:
    """Writes observations into the rows of one (C-contiguous) buffer; ``packer`` writes the rest."""

    cdef unsigned char[:, ::1] rows
    cdef object packer
    cdef object write_slow
    cdef bint flat  # a packed flat Dict: leaf j is value[keys[j]]
    cdef list keys
    cdef list dtypes
    cdef list views  # per row, the packer's leaf views: an env that writes in place returns these
    cdef Py_ssize_t[::1] offsets
    cdef Py_ssize_t[::1] sizes
    cdef int[::1] kinds
    cdef Py_ssize_t count

    def __init__(self, packer):
        layout = packer.layout
        buffer = packer.buffer
        self.packer = packer
        self.write_slow = packer.write
        self.rows = buffer.reshape(len(buffer), -1).view(np.uint8)
        leaves = layout.leaves
        self.count = len(leaves)
        self.flat = layout.packed and all(len(leaf.path) == 1 for leaf in leaves)
        self.keys = [leaf.path[0] if leaf.path else None for leaf in leaves]
        self.views = packer._row_views
        self.dtypes = [leaf.dtype for leaf in leaves]
        self.offsets = np.array([leaf.offset for leaf in leaves], dtype=np.intp)
        self.sizes = np.array([leaf.nbytes for leaf in leaves], dtype=np.intp)
        self.kinds = np.array(
            [INT32_SCALAR if leaf.kind == "discrete" and leaf.dtype == INT32 else MEMCPY for leaf in leaves],
            dtype=np.intc,
        )
        if not layout.packed and self.count != 1:
            raise ValueError("an unpacked layout has exactly one leaf")

    cdef bint _put(self, unsigned char* dst, Py_ssize_t j, object value) except -1:
        """Copies one leaf; False when this leaf needs the packer."""
        cdef Py_buffer view
        if self.kinds[j] == INT32_SCALAR:
            if type(value) is int or isinstance(value, INTEGER):
                (<int32_t*>dst)[0] = <int32_t>value
                return True
            return False
        if type(value) is not NDARRAY or value.dtype is not self.dtypes[j]:
            return False
        PyObject_GetBuffer(value, &view, PyBUF_STRIDES)  # raises rather than fail quietly
        try:
            if view.len != self.sizes[j] or not PyBuffer_IsContiguous(&view, b"C"):
                return False
            memcpy(dst, view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return True

    cpdef write(self, Py_ssize_t row, object value):
        """Stores one agent's structure (as the env gives it) into row ``row``."""
        cdef unsigned char* base = &self.rows[row, 0]
        cdef Py_ssize_t j
        cdef PyObject* item
        cdef list views
        if self.flat:
            if type(value) is not dict:
                self.write_slow(row, value)
                return
            views = <list>self.views[row]
            for j in range(self.count):
                item = PyDict_GetItem(value, self.keys[j])
                if item != NULL and <object>item is views[j]:
                    continue  # the env wrote this leaf into the row itself (observe_in_place)
                if item == NULL or not self._put(base + self.offsets[j], j, <object>item):
                    self.write_slow(row, value)
                    return
        elif self.count != 1 or self.keys[0] is not None or not self._put(base, 0, value):
            self.write_slow(row, value)


def step_loop(list envs, list actions, Rows obs, Rows final, float[::1] rewards, double[::1] returns,
              long long[::1] lengths, unsigned char[::1] terminals, unsigned char[::1] truncations,
              double[::1] totals):
    """Steps ``envs[i]`` with ``actions[i]``; see :func:`envs.emulation.steploop.step_python`."""
    cdef Py_ssize_t i, n = len(envs)
    cdef double reward
    cdef list infos = None
    if (len(actions) != n or rewards.shape[0] != n or returns.shape[0] != n or lengths.shape[0] != n
            or terminals.shape[0] != n or truncations.shape[0] != n or totals.shape[0] != 3):
        raise ValueError("envs, actions, rewards, returns, lengths and flags need one entry per env; totals 3")
    for i in range(n):
        env = envs[i]
        o, r, term, trunc, info = env.step(actions[i])
        reward = r
        rewards[i] = <float>reward
        returns[i] += reward
        lengths[i] += 1
        if term or trunc:
            if term:
                terminals[i], truncations[i] = 1, 0
            else:
                terminals[i], truncations[i] = 0, 1
                final.write(i, o)
            totals[0] += 1
            totals[1] += returns[i]
            totals[2] += lengths[i]
            returns[i] = 0
            lengths[i] = 0
            if infos is None:
                infos = []
            infos.append(info)
            o = env.reset()[0]
        else:
            terminals[i], truncations[i] = 0, 0
        obs.write(i, o)
    return infos
