/* Test and benchmark support: starts Debian's redis-server on a free
 * loopback port with its own temporary directory (CI has no Redis running),
 * and removes directory trees. Header-only so that unit tests and benchmarks
 * can share it without a library of their own. */
#ifndef ATOLL_TESTS_REDIS_SERVER_H
#define ATOLL_TESTS_REDIS_SERVER_H
#include <arpa/inet.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct test_redis {
    pid_t pid;
    int port;
    char dir[64];
    char url[64];
} test_redis;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

__attribute__((unused)) static void test_rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A port nobody listens on right now (the kernel's pick). */
static int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int test_redis_ping(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

/* Starts redis-server (on r->port when non-zero, else a free port);
 * 0, or -1 after printing why. */
__attribute__((unused)) static int test_redis_start(test_redis *r)
{
    if (!r->dir[0]) {
        snprintf(r->dir, sizeof r->dir, "/tmp/atoll-redis-XXXXXX");
        if (!mkdtemp(r->dir)) {
            perror("mkdtemp");
            return -1;
        }
    }
    if (!r->port && (r->port = test_free_port()) < 0) {
        fprintf(stderr, "redis: no free port\n");
        return -1;
    }
    if (!r->url[0])
        snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    char port[16], log[128];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r->dir,
                        "--save", "", "--appendonly", "no", "--daemonize", "no",
                        "--logfile", log, NULL};
        execvp("redis-server", argv);
        execv("/usr/bin/redis-server", argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 100; i++) { /* up to 5 s */
        if (test_redis_ping(r->port))
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "redis-server exited (status %d); see %s\n", status, log);
            r->pid = 0;
            return -1;
        }
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    fprintf(stderr, "redis-server did not answer on port %d\n", r->port);
    return -1;
}

/* Stops the server; keeps the directory and port unless `remove`. */
__attribute__((unused)) static void test_redis_stop(test_redis *r, int sig, int remove)
{
    if (r->pid > 0) {
        kill(r->pid, sig);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
    if (remove && r->dir[0]) {
        test_rm_rf(r->dir);
        r->dir[0] = '\0';
    }
}

#endif
