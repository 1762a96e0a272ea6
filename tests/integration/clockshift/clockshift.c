/* A process whose wall clock is off: LD_PRELOAD this with CLOCKSHIFT_SECONDS=N (may be
 * negative) and every read of the real-time clock -- clock_gettime(CLOCK_REALTIME*),
 * gettimeofday, time -- is N seconds off, in the process and the children it starts.
 * Monotonic and boot clocks are left alone, so sleeps and timeouts behave.
 *
 * Test-only (tests/integration/test_node_faults.py). Why not libfaketime (Debian's 0.9.10):
 * under it Python 3.11's time.sleep fails with EINVAL (FAKETIME_DONT_FAKE_MONOTONIC=1) or
 * threading waits hang (without it), since both sleep on CLOCK_MONOTONIC deadlines. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift;
static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int (*real_gettimeofday)(struct timeval *__restrict, void *__restrict);

/* On first use, not in a constructor: other libraries' constructors read the clock first. */
static void init(void) {
    const char *value = getenv("CLOCKSHIFT_SECONDS");
    shift = value ? atol(value) : 0;
    real_gettimeofday = dlsym(RTLD_NEXT, "gettimeofday");
    real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (!real_clock_gettime) init();
    int done = real_clock_gettime(id, ts);
    if (done == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += shift;
    return done;
}

int gettimeofday(struct timeval *__restrict tv, void *__restrict tz) {
    if (!real_clock_gettime) init();
    int done = real_gettimeofday(tv, tz);
    if (done == 0) tv->tv_sec += shift;
    return done;
}

time_t time(time_t *out) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (out) *out = now.tv_sec;
    return now.tv_sec;
}
