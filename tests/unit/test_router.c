/* Unit tests for src/server/router: wrangler route patterns and specificity. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "server/router.h"

static char A[] = "a", B[] = "b", C[] = "c", D[] = "d", E[] = "e";

static router *build(void)
{
    router *r = router_new();
    err e;
    assert_int_equal(router_add(r, "example.com/*", A, &e), 0);
    assert_int_equal(router_add(r, "example.com/api/*", B, &e), 0);
    assert_int_equal(router_add(r, "*.example.com/*", C, &e), 0);
    assert_int_equal(router_add(r, "https://example.com/exact", D, &e), 0);
    assert_int_equal(router_add(r, "*/health", E, &e), 0);
    return r;
}

static void most_specific_route_wins(void **state)
{
    router *r = build();
    assert_ptr_equal(router_match(r, "example.com", "/"), A);
    assert_ptr_equal(router_match(r, "example.com", "/other/x?y=1"), A);
    assert_ptr_equal(router_match(r, "example.com", "/api/v1"), B);
    assert_ptr_equal(router_match(r, "example.com", "/api/"), B);
    assert_ptr_equal(router_match(r, "example.com", "/exact"), D);
    assert_ptr_equal(router_match(r, "example.com", "/exact?q"), D);
    assert_ptr_equal(router_match(r, "example.com", "/exactly"), A);
    assert_ptr_equal(router_match(r, "shop.example.com", "/anything"), C);
    assert_ptr_equal(router_match(r, "a.b.example.com", "/"), C);
    router_free(r);
}

static void host_matching_ignores_case_and_port(void **state)
{
    router *r = build();
    assert_ptr_equal(router_match(r, "EXAMPLE.com:8080", "/api/x"), B);
    assert_ptr_equal(router_match(r, "Shop.Example.COM", "/"), C);
    router_free(r);
    /* IPv6 literals, with and without a port on either side. */
    r = router_new();
    err e;
    assert_int_equal(router_add(r, "[::1]:8080/*", A, &e), 0);
    assert_int_equal(router_add(r, "[fe80::2]/x/*", B, &e), 0);
    assert_ptr_equal(router_match(r, "[::1]", "/"), A);
    assert_ptr_equal(router_match(r, "[::1]:9000", "/a"), A);
    assert_ptr_equal(router_match(r, "[FE80::2]:80", "/x/y"), B);
    assert_null(router_match(r, "[fe80::2]", "/y"));
    assert_ptr_equal(router_find_same(r, "http://[::1]/*"), A);
    router_free(r);
}

static void unmatched_requests_get_null(void **state)
{
    router *r = build();
    assert_null(router_match(r, "example.org", "/"));
    assert_null(router_match(r, "notexample.com", "/"));   /* "*.example.com" needs the dot */
    assert_ptr_equal(router_match(r, "example.org", "/health"), E);
    assert_null(router_match(r, "example.org", "/health/x"));
    char longhost[400];
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    assert_null(router_match(r, longhost, "/"));
    router_free(r);
}

static void apex_wildcard_matches_apex_and_subdomains(void **state)
{
    router *r = router_new();
    err e;
    assert_int_equal(router_add(r, "*example.net/*", A, &e), 0);
    assert_ptr_equal(router_match(r, "example.net", "/x"), A);
    assert_ptr_equal(router_match(r, "www.example.net", "/x"), A);
    router_free(r);
}

static void malformed_patterns_are_refused_with_a_reason(void **state)
{
    router *r = router_new();
    err e;
    err_clear(&e);
    assert_int_equal(router_add(r, "/path-only", A, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "no host"));
    assert_int_equal(router_add(r, "exa*mple.com/*", A, &e), -EINVAL);
    assert_int_equal(router_add(r, "example.com/a*b", A, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "only end the path"));
    assert_int_equal(router_add(r, "example.com/a?x=1", A, &e), -EINVAL);
    assert_int_equal(router_count(r), 0);
    router_free(r);
}

static void first_added_wins_a_tie_and_removal_works(void **state)
{
    router *r = router_new();
    err e;
    assert_int_equal(router_add(r, "t.test/*", A, &e), 0);
    assert_int_equal(router_add(r, "t.test/*", B, &e), 0);
    assert_ptr_equal(router_match(r, "t.test", "/"), A);
    assert_int_equal(router_remove_target(r, A), 1);
    assert_ptr_equal(router_match(r, "t.test", "/"), B);
    router_free(r);
}

static void many_hosts_route_to_their_own_tenant(void **state)
{
    router *r = router_new();
    err e;
    static int targets[10000];
    char pattern[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(pattern, sizeof pattern, "tenant%d.example.com/*", i);
        assert_int_equal(router_add(r, pattern, &targets[i], &e), 0);
    }
    for (int i = 0; i < 10000; i += 97) {
        snprintf(pattern, sizeof pattern, "tenant%d.example.com", i);
        assert_ptr_equal(router_match(r, pattern, "/"), &targets[i]);
    }
    assert_null(router_match(r, "tenant10000.example.com", "/"));
    assert_int_equal(router_count(r), 10000);
    router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(most_specific_route_wins),
        cmocka_unit_test(host_matching_ignores_case_and_port),
        cmocka_unit_test(unmatched_requests_get_null),
        cmocka_unit_test(apex_wildcard_matches_apex_and_subdomains),
        cmocka_unit_test(malformed_patterns_are_refused_with_a_reason),
        cmocka_unit_test(first_added_wins_a_tie_and_removal_works),
        cmocka_unit_test(many_hosts_route_to_their_own_tenant),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
