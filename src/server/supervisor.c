/* The supervisor process (see supervisor.h). Signals are taken
 * synchronously with sigtimedwait, so the supervisor's whole state lives in
 * one loop and no handler ever races it. */
#include "server/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_AFTER_MS 5000   /* a worker that lived this long resets its backoff */
#define DRAIN_GRACE_MS 35000   /* after SIGTERM, SIGKILL stragglers (the 30 s wall limit + margin) */

typedef struct slot {
    const supervisor_group *group;
    int index;
    pid_t pid;                 /* 0 while not running */
    uint64_t started_ms;
    uint64_t restart_at_ms;    /* when to start it again after a death */
    uint64_t backoff_ms;
} slot;

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

static int start(slot *s, const sigset_t *old_mask)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, old_mask, NULL);
        _exit(s->group->run(s->group, s->index, s->group->data));
    }
    s->pid = pid;
    s->started_ms = now_ms();
    log_info("worker %s/%d started (pid %d)", s->group->name, s->index, (int)pid);
    return 0;
}

static void describe_exit(int status, char *out, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
}

int supervisor_run(const supervisor_group *groups, size_t ngroups, err *e)
{
    size_t nslots = 0;
    for (size_t g = 0; g < ngroups; g++)
        nslots += (size_t)groups[g].processes;
    slot *slots = xcalloc(nslots, sizeof *slots);
    size_t n = 0;
    for (size_t g = 0; g < ngroups; g++)
        for (int i = 0; i < groups[g].processes; i++)
            slots[n++] = (slot){.group = &groups[g], .index = i, .backoff_ms = BACKOFF_MIN_MS};

    sigset_t mask, old_mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, &old_mask);

    int rc = 0;
    size_t running = 0;
    for (size_t i = 0; i < nslots; i++) {
        if ((rc = start(&slots[i], &old_mask)) != 0) {
            err_set(e, rc, "supervisor: fork worker %s/%d: %s", slots[i].group->name, slots[i].index, strerror(-rc));
            break;
        }
        running++;
    }

    bool stopping = rc != 0;
    uint64_t kill_at = 0;
    if (stopping) {
        for (size_t i = 0; i < nslots; i++)
            if (slots[i].pid > 0)
                kill(slots[i].pid, SIGTERM);
        kill_at = now_ms() + DRAIN_GRACE_MS;
    }
    while (running > 0 || !stopping) {
        /* Wake for the next restart or the drain deadline. */
        uint64_t now = now_ms(), wake = now + 1000;
        for (size_t i = 0; i < nslots; i++)
            if (!stopping && slots[i].pid == 0 && slots[i].restart_at_ms < wake)
                wake = slots[i].restart_at_ms;
        if (stopping && kill_at < wake)
            wake = kill_at;
        uint64_t wait_ms = wake > now ? wake - now : 0;
        struct timespec ts = {.tv_sec = (time_t)(wait_ms / 1000), .tv_nsec = (long)(wait_ms % 1000) * 1000000};
        int sig = sigtimedwait(&mask, NULL, &ts);

        if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
            log_info("%s received: draining %zu worker process(es)", sig == SIGINT ? "SIGINT" : "SIGTERM", running);
            stopping = true;
            kill_at = now_ms() + DRAIN_GRACE_MS;
            for (size_t i = 0; i < nslots; i++)
                if (slots[i].pid > 0)
                    kill(slots[i].pid, SIGTERM);
        } else if ((sig == SIGTERM || sig == SIGINT) && stopping) {
            log_warn("second signal: stopping workers at once");
            kill_at = now_ms();
        }

        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (size_t i = 0; i < nslots; i++) {
                slot *s = &slots[i];
                if (s->pid != pid)
                    continue;
                s->pid = 0;
                running--;
                char how[128];
                describe_exit(status, how, sizeof how);
                if (stopping) {
                    log_info("worker %s/%d (pid %d) %s", s->group->name, s->index, (int)pid, how);
                    break;
                }
                uint64_t lived = now_ms() - s->started_ms;
                s->backoff_ms = lived >= STABLE_AFTER_MS ? BACKOFF_MIN_MS
                                : s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
                s->restart_at_ms = now_ms() + (lived >= STABLE_AFTER_MS ? 0 : s->backoff_ms);
                log_error("worker %s/%d (pid %d) died: %s after %llu ms; restarting in %llu ms", s->group->name,
                          s->index, (int)pid, how, (unsigned long long)lived,
                          (unsigned long long)(s->restart_at_ms - now_ms()));
                break;
            }
        }

        if (stopping && running > 0 && now_ms() >= kill_at) {
            for (size_t i = 0; i < nslots; i++)
                if (slots[i].pid > 0) {
                    log_warn("worker %s/%d (pid %d) did not drain in time: SIGKILL", slots[i].group->name,
                             slots[i].index, (int)slots[i].pid);
                    kill(slots[i].pid, SIGKILL);
                }
            kill_at = UINT64_MAX;
        }
        if (!stopping) {
            for (size_t i = 0; i < nslots; i++) {
                if (slots[i].pid == 0 && now_ms() >= slots[i].restart_at_ms) {
                    int src = start(&slots[i], &old_mask);
                    if (src == 0)
                        running++;
                    else {
                        log_error("restart worker %s/%d: %s", slots[i].group->name, slots[i].index, strerror(-src));
                        slots[i].restart_at_ms = now_ms() + BACKOFF_MAX_MS;
                    }
                }
            }
        }
    }
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    free(slots);
    return rc;
}
