/* fuzz_insert.c — libFuzzer target: the INSERT statement parser. Checks the invariants the
 * proxy relies on: data_off within the text, names non-empty and bounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static proxy_stmt_t st;
    char *copy = malloc(size ? size : 1); /* exact-size copy: ASan sees any overread */
    if (!copy) return 0;
    memcpy(copy, data, size);
    int rc = proxy_stmt_parse(copy, size, &st);
    if (rc == PROXY_STMT_INSERT) {
        if (st.data_off > size) __builtin_trap();
        if (!st.table || !st.table[0] || strlen(st.table) > PROXY_NAME_MAX) __builtin_trap();
        if (st.db && (!st.db[0] || strlen(st.db) > PROXY_NAME_MAX)) __builtin_trap();
        if (st.n_settings > PROXY_STMT_MAX_SETTINGS) __builtin_trap();
        for (size_t i = 0; i < st.n_settings; i++)
            if (!st.settings[i].key[0]) __builtin_trap();
        if (st.columns && !st.columns[0]) __builtin_trap();
    } else if (rc != PROXY_STMT_OTHER && rc != PROXY_STMT_INCOMPLETE && rc != PROXY_STMT_ESYNTAX) {
        __builtin_trap();
    }
    free(copy);
    return 0;
}
