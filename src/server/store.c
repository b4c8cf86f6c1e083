/* The deploy store in the state directory (see store.h). */
#include "server/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/file.h"
#include "server/config.h"

#define MAX_JOURNAL_READ (64u << 20)

char *store_script_path(const char *state_dir, const char *name, uint64_t version, bool wasm)
{
    return xasprintf("%s/deploys/%s/%" PRIu64 "%s", state_dir, name, version, wasm ? ".wasm" : ".js");
}

char *store_find_script(const char *state_dir, const char *name, uint64_t version)
{
    char *wasm = store_script_path(state_dir, name, version, true);
    if (access(wasm, F_OK) == 0)
        return wasm;
    free(wasm);
    return store_script_path(state_dir, name, version, false);
}

char *store_settings_path(const char *state_dir, const char *name, uint64_t version)
{
    return xasprintf("%s/deploys/%s/%" PRIu64 ".json", state_dir, name, version);
}

int store_init(const char *state_dir, err *e)
{
    char *dir = xasprintf("%s/deploys", state_dir);
    int rc = file_mkdirs(dir, 0750, e);
    free(dir);
    if (rc != 0)
        return rc;
    char *journal = xasprintf("%s/journal", state_dir);
    int fd = open(journal, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        rc = err_set(e, -errno, "%s: %s", journal, strerror(errno));
    else
        close(fd);
    free(journal);
    return rc;
}

static int append_journal(const char *state_dir, const char *line, err *e)
{
    char *journal = xasprintf("%s/journal", state_dir);
    int rc = 0, fd = open(journal, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = err_set(e, -errno, "%s: %s", journal, strerror(errno));
        goto done;
    }
    /* One write of one short line: readers never see half of it. */
    size_t len = strlen(line);
    ssize_t n = write(fd, line, len);
    if (n != (ssize_t)len || fsync(fd) != 0)
        rc = err_set(e, n < 0 ? -errno : -EIO, "%s: append: %s", journal, strerror(errno ? errno : EIO));
    close(fd);
done:
    free(journal);
    return rc;
}

int store_stage(const char *state_dir, const char *name, uint64_t version, bool wasm, const void *script,
                size_t script_len, const char *settings, size_t settings_len, err *e)
{
    if (!config_valid_name(name))
        return err_set(e, -EINVAL, "'%s' is not a worker name (1 to 63 letters, digits, '-' or '_')", name);
    char *dir = xasprintf("%s/deploys/%s", state_dir, name);
    char *script_path = store_script_path(state_dir, name, version, wasm);
    char *settings_path = store_settings_path(state_dir, name, version);
    int rc = file_mkdirs(dir, 0750, e);
    if (rc == 0)
        rc = file_write_atomic(script_path, script, script_len, e);
    if (rc == 0)
        rc = file_write_atomic(settings_path, settings, settings_len, e);
    free(dir);
    free(script_path);
    free(settings_path);
    return rc;
}

int store_commit(const char *state_dir, const char *name, uint64_t version, err *e)
{
    char *line = xasprintf("put %s %" PRIu64 "\n", name, version);
    int rc = append_journal(state_dir, line, e);
    free(line);
    return rc;
}

void store_discard(const char *state_dir, const char *name, uint64_t version)
{
    for (int wasm = 0; wasm < 2; wasm++) {
        char *script_path = store_script_path(state_dir, name, version, wasm);
        unlink(script_path);
        free(script_path);
    }
    char *settings_path = store_settings_path(state_dir, name, version);
    unlink(settings_path);
    free(settings_path);
}

int store_delete(const char *state_dir, const char *name, err *e)
{
    if (!config_valid_name(name))
        return err_set(e, -EINVAL, "'%s' is not a worker name", name);
    char *line = xasprintf("delete %s\n", name);
    int rc = append_journal(state_dir, line, e);
    free(line);
    return rc;
}

int store_follow(const char *state_dir, uint64_t *offset, store_entry_cb cb, void *data, err *e)
{
    char *journal = xasprintf("%s/journal", state_dir);
    int rc = 0, fd = open(journal, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? 0 : err_set(e, -errno, "%s: %s", journal, strerror(errno));
        goto done;
    }
    buf text;
    buf_init(&text, MAX_JOURNAL_READ);
    char chunk[16384];
    for (;;) {
        ssize_t n = pread(fd, chunk, sizeof chunk, (off_t)(*offset + text.len));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || buf_append(&text, chunk, (size_t)n) != 0)
            break;
    }
    close(fd);
    size_t consumed = 0;
    for (;;) {
        char *nl = text.data ? memchr(text.data + consumed, '\n', text.len - consumed) : NULL;
        if (!nl)
            break; /* a line still being written: read it next time */
        *nl = '\0';
        char *line = text.data + consumed;
        consumed = (size_t)(nl - text.data) + 1;
        char name[64];
        uint64_t version;
        if (sscanf(line, "put %63s %" SCNu64, name, &version) == 2 && version > 0 && config_valid_name(name))
            cb(data, name, version);
        else if (sscanf(line, "delete %63s", name) == 1 && config_valid_name(name))
            cb(data, name, 0);
        /* Anything else is not ours to act on; skip it. */
    }
    *offset += consumed;
    buf_free(&text);
done:
    free(journal);
    return rc;
}
