/* atoll bench: compute, the primes below N by a sieve (as compute.js);
 * a CGI/WAGI program: compiled to wasm32-wasi for the wasm tier and
 * natively (static) for busybox httpd in the container tier. */
#include <stdio.h>
#include <stdlib.h>
#define N 100000
int main(void)
{
    unsigned char *composite = calloc(N, 1);
    int count = 0;
    if (!composite) return 1;
    for (long i = 2; i < N; i++) {
        if (composite[i]) continue;
        count++;
        for (long j = i * i; j < N; j += i) composite[j] = 1;
    }
    printf("Content-Type: text/plain\r\n\r\nprimes below %d: %d\n", N, count);
    free(composite);
    return 0;
}
