/* alloc_count.c — LD_PRELOAD for alloc_bench.sh (a measurement tool, not a test): counts
 * heap allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc) per thread, and
 * copies of a request's payload: memcpy/memmove calls whose source holds ALLOC_COUNT_MARK
 * (a string only the benchmark's row contains). Every 50 ms a thread writes the counters,
 * one line per thread ("tid allocs payload_copies"), to ALLOC_COUNT_OUT. Copies made by the
 * kernel (recv, write) and inside libc (realloc moving a block) are not seen.
 * Build: cc -O2 -shared -fPIC -o alloc_count.so alloc_count.c -ldl -lpthread */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

#define SLOTS 256

typedef struct {
    _Atomic long tid;
    _Atomic unsigned long allocs, copies;
} slot_t;

static slot_t slots[SLOTS];
static __thread slot_t *mine;
static const char *mark;
static size_t mark_len;
static void *(*real_memcpy)(void *, const void *, size_t);
static void *(*real_memmove)(void *, const void *, size_t);

static slot_t *me(void)
{
    if (mine) return mine;
    long tid = syscall(SYS_gettid);
    for (int i = 0; i < SLOTS; i++) {
        long z = 0;
        if (atomic_load(&slots[i].tid) == tid ||
            atomic_compare_exchange_strong(&slots[i].tid, &z, tid))
            return mine = &slots[i];
    }
    return mine = &slots[SLOTS - 1];
}

static void count_alloc(void)
{
    atomic_fetch_add_explicit(&me()->allocs, 1, memory_order_relaxed);
}

void *malloc(size_t n)
{
    count_alloc();
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    count_alloc();
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    count_alloc();
    return __libc_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count_alloc();
    void *p = __libc_memalign(align, n);
    if (!p) return 12;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    count_alloc();
    return __libc_memalign(align, n);
}

/* A copy of the payload: the source holds the marker. Bytes are compared by hand: memmem
 * could call memcpy. */
static void count_copy(const void *src, size_t n)
{
    if (!mark || n < mark_len || n < 64) return;
    const char *s = src;
    for (size_t i = 0; i + mark_len <= n; i++)
        if (s[i] == mark[0] && memcmp(s + i, mark, mark_len) == 0) {
            atomic_fetch_add_explicit(&me()->copies, 1, memory_order_relaxed);
            return;
        }
}

static void byte_copy(char *d, const char *s, size_t n, int backwards)
{
    if (backwards)
        while (n--)
            d[n] = s[n];
    else
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
}

void *memcpy(void *d, const void *s, size_t n)
{
    count_copy(s, n);
    if (real_memcpy) return real_memcpy(d, s, n);
    byte_copy(d, s, n, 0);
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    count_copy(s, n);
    if (real_memmove) return real_memmove(d, s, n);
    byte_copy(d, s, n, (char *)d > (const char *)s);
    return d;
}

static void *reporter(void *arg)
{
    const char *out = arg;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    for (;;) {
        usleep(50000);
        FILE *f = fopen(tmp, "w");
        if (!f) continue;
        for (int i = 0; i < SLOTS; i++) {
            long tid = atomic_load(&slots[i].tid);
            if (tid)
                fprintf(f, "%ld %lu %lu\n", tid, atomic_load(&slots[i].allocs),
                        atomic_load(&slots[i].copies));
        }
        fclose(f);
        rename(tmp, out);
    }
    return NULL;
}

__attribute__((constructor)) static void init(void)
{
    real_memcpy = dlsym(RTLD_NEXT, "memcpy");
    real_memmove = dlsym(RTLD_NEXT, "memmove");
    mark = getenv("ALLOC_COUNT_MARK");
    if (mark) mark_len = strlen(mark);
    const char *out = getenv("ALLOC_COUNT_OUT");
    if (out) {
        pthread_t t;
        pthread_create(&t, NULL, reporter, (void *)out);
        pthread_detach(t);
    }
}
