/*
 * ledger._speedups: the canonical encoder's type walk, in C.
 *
 * Why hand-written: ledger/canonical.py sends a value to orjson only when a
 * strict walk over it proves orjson's bytes equal the RFC 8785 reference's
 * (exact dict/list/str/int/float/bool/None; integers within +-(2**53-1);
 * floats outside the one decade where orjson writes exponent form; object
 * keys inside the Basic Multilingual Plane). No maintained library does that
 * walk (orjson serialises what JCS writes differently without saying so, and
 * the only RFC 8785 package on PyPI is the pure-Python reference); in Python
 * it costs 1.5-2 us per ledger entry, a sixth of a batched append.
 *
 * admits(value) returns 0 (refuse: the caller uses the reference), 1 (admit)
 * or 2 (admit once whole-number floats are written as integers), exactly
 * what canonical._fast_path_admits_py returns for every value (True == 1,
 * False == 0); tests/test_canonical.py checks that by property tests.
 *
 * Safety: the walk runs no Python code (exact-type checks only, no
 * comparisons that could call __eq__), so nothing can mutate the value while
 * borrowed references are held; recursion stops at the same depth (64) as
 * the Python walk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define MAX_DEPTH 64
#define MAX_SAFE_INTEGER 9007199254740991LL /* 2**53 - 1 */

enum { REFUSE = 0, ADMIT = 1, NORMALISE = 2 };

static int
float_verdict(double x)
{
    if (!isfinite(x))
        return REFUSE;
    double magnitude = fabs(x);
    if (floor(x) == x) /* whole: JCS writes 1.0 as 1, so the caller writes it as an int */
        return magnitude <= (double)MAX_SAFE_INTEGER ? NORMALISE : REFUSE;
    /* The decade where orjson writes "1e-06" style and JCS writes digits. */
    return (magnitude >= 1e-6 && magnitude < 1e-5) ? REFUSE : ADMIT;
}

static int
int_verdict(PyObject *value)
{
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow)
        return REFUSE;
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return REFUSE;
    }
    return (n >= -MAX_SAFE_INTEGER && n <= MAX_SAFE_INTEGER) ? ADMIT : REFUSE;
}

static int
key_verdict(PyObject *key)
{
    if (!PyUnicode_CheckExact(key))
        return REFUSE;
    if (PyUnicode_READY(key) < 0) {
        PyErr_Clear();
        return REFUSE;
    }
    /* Strings are stored in the narrowest kind that fits: the 4-byte kind
     * means a character outside the BMP (JCS sorts by UTF-16 code units,
     * orjson by code points; the two orders differ only there). */
    return PyUnicode_KIND(key) == PyUnicode_4BYTE_KIND ? REFUSE : ADMIT;
}

static int walk(PyObject *value, int depth);

static inline int
merge(int *verdict, PyObject *child, int depth)
{
    int found = walk(child, depth + 1);
    if (found == NORMALISE)
        *verdict = NORMALISE;
    return found;
}

static int
walk(PyObject *value, int depth)
{
    if (PyUnicode_CheckExact(value) || PyBool_Check(value) || value == Py_None)
        return ADMIT;
    if (PyLong_CheckExact(value))
        return int_verdict(value);
    if (PyFloat_CheckExact(value))
        return float_verdict(PyFloat_AS_DOUBLE(value));
    if (depth >= MAX_DEPTH)
        return REFUSE;
    int verdict = ADMIT;
    if (PyDict_CheckExact(value)) {
        Py_ssize_t position = 0;
        PyObject *key, *child;
        while (PyDict_Next(value, &position, &key, &child)) {
            if (key_verdict(key) == REFUSE || merge(&verdict, child, depth) == REFUSE)
                return REFUSE;
        }
        return verdict;
    }
    if (PyList_CheckExact(value)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
            if (merge(&verdict, PyList_GET_ITEM(value, i), depth) == REFUSE)
                return REFUSE;
        }
        return verdict;
    }
    return REFUSE; /* tuples, subclasses, anything else: the reference decides */
}

static PyObject *
admits(PyObject *module, PyObject *value)
{
    (void)module;
    return PyLong_FromLong(walk(value, 0));
}

static PyMethodDef methods[] = {
    {"admits", admits, METH_O,
     "admits(value) -> 0, 1 or 2: whether orjson gives the RFC 8785 bytes of value "
     "(2: once whole-number floats are written as integers)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ledger._speedups",
    .m_doc = "The canonical encoder's fast-path type walk (see ledger/canonical.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
