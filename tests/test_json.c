/* test_json.c — the strict JSON parser (lib/core/json.h): values, escapes and
 * UTF-8, exact 64-bit integers, and the inputs it must refuse (with the
 * offset in the message), without crashing on any prefix of a valid text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "testutil.h"

static int parses(const char *s) {
    dv2_json_doc *d;
    int rc = dv2_json_parse(&d, s, strlen(s), 0, NULL);
    dv2_json_free(d);
    return rc == 0;
}

int main(void) {
    const char *txt = " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\","
                      " \"big\": 9007199254740993, \"neg\": -9223372036854775808, \"o\": {}, \"e\": []} ";
    dv2_json_doc *d;
    dv2_error err;
    CHECK(dv2_json_parse(&d, txt, strlen(txt), 0, &err) == 0);
    const dv2_json *root = dv2_json_root(d);
    CHECK(dv2_json_type(root) == DV2_JSON_OBJECT && dv2_json_len(root) == 6);
    const dv2_json *a = dv2_json_get(root, "a");
    CHECK(dv2_json_type(a) == DV2_JSON_ARRAY && dv2_json_len(a) == 5);
    int64_t iv;
    CHECK(dv2_json_int(dv2_json_at(a, 0), &iv) && iv == 1);
    CHECK(!dv2_json_int(dv2_json_at(a, 1), &iv) && dv2_json_num(dv2_json_at(a, 1)) == -2500.0);
    CHECK(dv2_json_type(dv2_json_at(a, 2)) == DV2_JSON_TRUE && dv2_json_type(dv2_json_at(a, 4)) == DV2_JSON_NULL);
    const char *s = dv2_json_str(dv2_json_get(root, "s"));
    CHECK(s && strcmp(s, "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80") == 0);
    CHECK(dv2_json_int(dv2_json_get(root, "big"), &iv) && iv == 9007199254740993LL);
    CHECK(dv2_json_int(dv2_json_get(root, "neg"), &iv) && iv == INT64_MIN);
    CHECK(dv2_json_len(dv2_json_get(root, "o")) == 0 && dv2_json_type(dv2_json_get(root, "e")) == DV2_JSON_ARRAY);
    CHECK(strcmp(dv2_json_key(root, 1), "s") == 0 && dv2_json_get(root, "zz") == NULL);
    dv2_json_free(d);
    /* every proper prefix is refused, never a crash */
    size_t n = strlen(txt);
    for (size_t k = 0; k + 1 < n; k++) {
        if (k == 0 || txt[k - 1] == ' ') continue; /* prefixes ending in the outer whitespace */
        CHECKF(dv2_json_parse(&d, txt, k, 0, NULL) < 0, "prefix %zu accepted", k);
    }
    const char *bad[] = {"", " ", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "1e", "+1",
                         "NaN", "Infinity", "tru", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"",
                         "\"a\x01\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "{\"a\":1,\"a\":2}", "[1] 2",
                         "// c\n1", "1e999", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]"
                         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dv2_error_clear(&err);
        int rc = dv2_json_parse(&d, bad[i], strlen(bad[i]), 0, &err);
        CHECKF(rc < 0 && d == NULL && strstr(err.msg, "json: offset"), "accepted or no offset: '%s' (%s)", bad[i], err.msg);
    }
    const char *good[] = {"0", "-0", "1E+2", "\"\"", "[]", "{}", " [ 1 , { \"k\" : [ ] } ] ", "\"\\u0000\""};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) CHECKF(parses(good[i]), "refused '%s'", good[i]);
    /* node budget */
    CHECK(dv2_json_parse(&d, "[1,2,3,4]", 9, 3, &err) == DV2_ENOMEM);
    return tu_finish("test_json");
}
