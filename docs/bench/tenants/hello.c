/* atoll bench: hello world as a WAGI program. */
#include <stdio.h>
int main(void)
{
    printf("Content-Type: text/plain\r\n\r\nHello from atoll!\n");
    return 0;
}
