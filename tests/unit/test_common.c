/* test_common.c — common/: the one percent-decoding rule, the URL splitter and its refusals,
 * the password mask, the encoder, the JSON string escaper, FNV-1a and the clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/time.h"
#include "common/url.h"

static void test_pct_decode_one_rule(void **st)
{
    (void)st;
    char out[64];
    assert_int_equal(url_pct_decode("a%40b%3a", 8, 0, out), 4);
    assert_string_equal(out, "a@b:");
    assert_int_equal(url_pct_decode("a+b%2B", 6, URL_PLUS_IS_SPACE, out), 4);
    assert_string_equal(out, "a b+");
    assert_int_equal(url_pct_decode("a+b", 3, 0, out), 3);
    assert_string_equal(out, "a+b");
    /* malformed escapes are refused, never passed through */
    assert_int_equal(url_pct_decode("%4", 2, 0, out), -1);
    assert_int_equal(url_pct_decode("%zz", 3, 0, out), -1);
    assert_int_equal(url_pct_decode("ab%", 3, 0, out), -1);
    /* %00: kept with its length in query values, refused where a C string is made */
    assert_int_equal(url_pct_decode("a%00", 4, 0, out), 2);
    assert_int_equal(url_pct_decode("a%00", 4, URL_REFUSE_NUL, out), -1);
}

static void test_url_split_parts_and_refusals(void **st)
{
    (void)st;
    url_t u;
    const char *why = NULL;
    assert_int_equal(url_split("https://u:p%40@ch.example:8443/db", &u, &why), 0);
    assert_int_equal((int)u.scheme_len, 5);
    assert_memory_equal(u.user, "u:p%40", u.user_len);
    assert_memory_equal(u.host, "ch.example:8443", u.host_len);
    assert_memory_equal(u.port, "8443", u.port_len);
    assert_string_equal(u.path, "/db");
    assert_int_equal(url_split("mysql://[::1]:9030", &u, &why), 0);
    assert_null(u.user);
    assert_memory_equal(u.host, "[::1]:9030", u.host_len);
    const char *bad[][2] = {
        {"ch:8123", "expected scheme://host[:port]"},
        {"http://h/x?y=1", "a query string or fragment is not allowed"},
        {"http://h/a b", "spaces or control characters in URL"},
        {"http://:8123", "URL has no host"},
        {"http://h$:1", "bad character in URL host"},
        {"http://h:0", "bad port in URL (1-65535)"},
        {"http://h:65536", "bad port in URL (1-65535)"},
        {"http://[zz]:1", "bad [IPv6] host in URL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_true(url_split(bad[i][0], &u, &why) < 0);
        assert_string_equal(why, bad[i][1]);
    }
}

static void test_url_redact_masks_only_the_password(void **st)
{
    (void)st;
    char out[128];
    url_redact("http://alice:s3cr%40t@h:8123/db", out, sizeof out);
    assert_string_equal(out, "http://alice:***@h:8123/db");
    url_redact("http://alice@h:8123", out, sizeof out);
    assert_string_equal(out, "http://alice@h:8123");
    url_redact("mysql://root:pw@[::1]:9030", out, sizeof out);
    assert_string_equal(out, "mysql://root:***@[::1]:9030");
    url_redact(NULL, out, sizeof out);
    assert_string_equal(out, "");
}

static void test_pct_encode_keeps_only_unreserved(void **st)
{
    (void)st;
    buf_t b = {0};
    assert_int_equal(url_pct_encode(&b, "a-Z_0.~ /&=\xc3\xa9", 13), 0);
    assert_string_equal(b.data, "a-Z_0.~%20%2F%26%3D%C3%A9");
    buf_free(&b);
}

static void test_json_escape_one_escaper(void **st)
{
    (void)st;
    buf_t b = {0};
    assert_int_equal(buf_json_escape(&b, "q\"b\\n\n\x01\t\xc3\xa9"), 0);
    assert_string_equal(b.data, "q\\\"b\\\\n\\n\\u0001\\u0009\xc3\xa9");
    buf_free(&b);
}

static void test_json_get_decodes_unicode_escapes(void **st)
{
    (void)st;
    /* the sinks' old reader turned every non-ASCII \u escape into '?' */
    const char *j = "{\"Status\":\"Fail\",\"Message\":\"caf\\u00e9 \\ud83d\\ude00\"}";
    char v[64];
    assert_int_equal(json_get(j, strlen(j), "Message", v, sizeof v), 1);
    assert_string_equal(v, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    /* a member before a cut tail is found; one after it is an error, not "absent" */
    assert_int_equal(json_get(j, 20, "Status", v, sizeof v), 1);
    assert_int_equal(json_get(j, 20, "Message", v, sizeof v), -1);
    /* a trailing comma is not an object */
    json_member_t m[4];
    assert_true(json_members("{\"a\":1,}", 8, m, 4) < 0);
    /* nesting past the depth limit is refused, not walked */
    char deep[400];
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"a\":", 4), n += 4;
    for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
        deep[n++] = '[';
    for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_true(json_members(deep, n, m, 4) < 0);
}

static void test_fnv1a_known_values(void **st)
{
    (void)st;
    /* the published FNV-1a 32-bit test vectors: stored labels depend on them */
    assert_int_equal(fnv1a32("", 0), 0x811c9dc5u);
    assert_int_equal(fnv1a32("a", 1), 0xe40c292cu);
    assert_int_equal(fnv1a32("foobar", 6), 0xbf9cf968u);
}

static void test_clock_deadline_is_normalised(void **st)
{
    (void)st;
    struct timespec ts;
    uint64_t before = time_mono_ms();
    time_mono_deadline(&ts, 1999);
    assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
    uint64_t at = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    assert_true(at >= before + 1999);
    assert_true(time_wall_ms() > 1600000000000ull); /* after 2020: the wall clock, not uptime */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pct_decode_one_rule),
        cmocka_unit_test(test_url_split_parts_and_refusals),
        cmocka_unit_test(test_url_redact_masks_only_the_password),
        cmocka_unit_test(test_pct_encode_keeps_only_unreserved),
        cmocka_unit_test(test_json_escape_one_escaper),
        cmocka_unit_test(test_json_get_decodes_unicode_escapes),
        cmocka_unit_test(test_fnv1a_known_values),
        cmocka_unit_test(test_clock_deadline_is_normalised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
