/* Whole-file reads and atomic writes (see file.h). */
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"

int file_read_all(const char *path, size_t max, buf *b, err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, -errno, "%s: cannot open: %s", path, strerror(errno));
    int rc = 0;
    char chunk[16384];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(e, -errno, "%s: read: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        total += (size_t)n;
        if (total > max || buf_append(b, chunk, (size_t)n) != 0) {
            rc = err_set(e, -E2BIG, "%s: larger than %zu bytes", path, max);
            break;
        }
    }
    close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_replace(const char *path, const void *data, size_t len, bool durable, err *e);

int file_write_atomic(const char *path, const void *data, size_t len, err *e)
{
    return write_replace(path, data, len, true, e);
}

int file_replace(const char *path, const void *data, size_t len, err *e)
{
    return write_replace(path, data, len, false, e);
}

static int write_replace(const char *path, const void *data, size_t len, bool durable, err *e)
{
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    char *dir_copy = xstrdup(path);
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = err_set(e, -errno, "%s: create: %s", tmp, strerror(errno));
        goto done;
    }
    if ((rc = write_all(fd, data, len)) != 0 || (durable && fsync(fd) != 0 && (rc = -errno))) {
        err_set(e, rc, "%s: write: %s", tmp, strerror(-rc));
        close(fd);
        unlink(tmp);
        goto done;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        rc = err_set(e, -errno, "rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    /* The rename itself is durable only once the directory is synced. */
    int dfd = durable ? open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
done:
    free(tmp);
    free(dir_copy);
    return rc;
}

int file_mkdirs(const char *path, unsigned mode, err *e)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            rc = err_set(e, -errno, "mkdir %s: %s", p, strerror(errno));
            break;
        }
        *s = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    return rc;
}
