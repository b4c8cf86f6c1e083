/* An atoll wasm tenant in C: a WAGI (CGI for WebAssembly) program. The
 * request arrives as environment variables (REQUEST_METHOD, PATH_INFO,
 * QUERY_STRING, HTTP_*, config vars) and the body on stdin; the response
 * is CGI on stdout: headers, a blank line, the body. stderr goes to the
 * tenant's log.
 *
 * Build with Debian's clang, lld and wasi-libc:
 *   clang --target=wasm32-wasi -O2 -o hello.wasm hello.c
 * Try it (the CLI helper of the wasm tier):
 *   atoll wasm hello.wasm '/greet?name=you' --var GREETING=Hello */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    const char *greeting = getenv("GREETING"), *query = getenv("QUERY_STRING");
    const char *name = query && strncmp(query, "name=", 5) == 0 ? query + 5 : "world";
    fprintf(stderr, "greeting %s\n", name);
    printf("Content-Type: text/plain; charset=utf-8\n"
           "Cache-Control: no-store\n"
           "\n"
           "%s, %s! (%s %s)\n",
           greeting ? greeting : "Hello", name, getenv("REQUEST_METHOD"), getenv("PATH_INFO"));
    return 0;
}
