/* hash.h — FNV-1a (32-bit): the one small non-cryptographic hash, for names in idempotency
 * keys and labels, plan fingerprints and hash tables. Its values are stored (labels in
 * StarRocks, keys in ClickHouse's dedup log): never change the function. */
#ifndef SLUICE_HASH_H
#define SLUICE_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t fnv1a32(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

#endif
