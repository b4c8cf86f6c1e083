/* The WASI preview 1 host: what a guest's libc calls for arguments,
 * environment, clocks, randomness, stdin/stdout/stderr, sleeping, and an
 * optional read-only preopened directory. Everything else answers ENOSYS,
 * or ENOTCAPABLE for writes to the file system.
 *
 * Every pointer and length from the guest is checked against the current
 * size of its linear memory before use (guest_ptr). Files under the
 * preopened directory are opened with openat2(RESOLVE_BENEATH), so
 * neither `..` nor a symlink can lead outside it, and read-only.
 * Guest fds: 0-2 stdio, 3 the preopened directory, 4+ files opened in it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "wasm/internal.h"

enum {
    E_SUCCESS = 0, E_2BIG = 1, E_ACCES = 2, E_AGAIN = 6, E_BADF = 8, E_FAULT = 21, E_FBIG = 22,
    E_INVAL = 28, E_IO = 29, E_ISDIR = 31, E_LOOP = 32, E_MFILE = 33, E_NAMETOOLONG = 37,
    E_NOENT = 44, E_NOMEM = 48, E_NOSYS = 52, E_NOTDIR = 54, E_PERM = 63, E_SPIPE = 70,
    E_NOTCAPABLE = 76,
};
enum { FT_UNKNOWN = 0, FT_CHAR = 2, FT_DIR = 3, FT_REG = 4, FT_SYMLINK = 7 };

#define RIGHT_FD_WRITE (1u << 6)
#define OFLAGS_WRITE (1u /* creat */ | 4u /* excl */ | 8u /* trunc */)
#define OFLAG_DIRECTORY 2u
#define FDFLAGS_WRITE (1u /* append */ | 2u /* dsync */ | 8u /* rsync */ | 16u /* sync */)
#define ERRLINE_MAX 4096
#define ERRLINES_MAX 1000 /* stderr lines logged per request */
#define PATH_MAX_GUEST 4096

/* A limit that expired while the host ran takes effect at the next call. */
#define ENTER(r) CHECK_LIMITS(r)
/* And inside the loops of one call whose work the guest sizes (millions of
 * iovecs, gigabytes of randomness): between steps the host holds nothing
 * that jumping out would leak or leave locked. */
#define CHECK_LIMITS(r)                                                                            \
    do {                                                                                           \
        if ((r)->pending)                                                                          \
            wasm__trap((r), (wasm_trap)(r)->pending);                                              \
    } while (0)

/* ---- guest memory ------------------------------------------------------ */

static uint8_t *guest_ptr(wasm__run *r, uint32_t off, uint64_t len)
{
    if (!r->mem || (uint64_t)off + len > r->mem->size)
        return NULL;
    return r->mem->data + off;
}

static bool put_u64(wasm__run *r, uint32_t off, uint64_t v)
{
    uint8_t *p = guest_ptr(r, off, 8);
    if (p)
        memcpy(p, &v, 8); /* wasm is little-endian, and so are the hosts we build for */
    return p != NULL;
}

static bool put_u32(wasm__run *r, uint32_t off, uint32_t v)
{
    uint8_t *p = guest_ptr(r, off, 4);
    if (p)
        memcpy(p, &v, 4);
    return p != NULL;
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t host_errno(int e)
{
    switch (e) {
    case ENOENT: return E_NOENT;
    case EACCES: return E_ACCES;
    case EPERM: return E_PERM;
    case ENOTDIR: return E_NOTDIR;
    case EISDIR: return E_ISDIR;
    case ELOOP: return E_LOOP;
    case ENAMETOOLONG: return E_NAMETOOLONG;
    case EXDEV: return E_NOTCAPABLE; /* RESOLVE_BENEATH refused an escape */
    case EMFILE: case ENFILE: return E_MFILE;
    case ENOMEM: return E_NOMEM;
    case EINVAL: return E_INVAL;
    case EAGAIN: return E_AGAIN;
    default: return E_IO;
    }
}

/* The file behind guest fd >= 3, or NULL. */
static wasm__file *file_at(wasm__run *r, uint32_t fd)
{
    if (fd < 3 || fd - 3 >= WASM_MAX_FILES || r->files[fd - 3].fd < 0)
        return NULL;
    return &r->files[fd - 3];
}

/* ---- args and environment ---------------------------------------------- */

static uint32_t strings_sizes(wasm__run *r, char **v, size_t n, uint32_t count_ptr, uint32_t size_ptr)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(v[i]) + 1;
    if (!put_u32(r, count_ptr, (uint32_t)n) || !put_u32(r, size_ptr, (uint32_t)total))
        return E_FAULT;
    return E_SUCCESS;
}

static uint32_t strings_get(wasm__run *r, char **v, size_t n, uint32_t ptrs, uint32_t data)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(v[i]) + 1;
    uint8_t *pp = guest_ptr(r, ptrs, (uint64_t)n * 4), *dp = guest_ptr(r, data, total);
    if (!pp || !dp || (uint64_t)data + total > UINT32_MAX)
        return E_FAULT;
    uint32_t at = data;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;
        memcpy(pp + 4 * i, &at, 4);
        memcpy(dp + (at - data), v[i], len);
        at += (uint32_t)len;
    }
    return E_SUCCESS;
}

static uint32_t args_sizes_get(wasm__run *r, uint32_t count, uint32_t size)
{
    ENTER(r);
    return strings_sizes(r, r->argv, r->argc, count, size);
}

static uint32_t args_get(wasm__run *r, uint32_t argv, uint32_t data)
{
    ENTER(r);
    return strings_get(r, r->argv, r->argc, argv, data);
}

static uint32_t environ_sizes_get(wasm__run *r, uint32_t count, uint32_t size)
{
    ENTER(r);
    return strings_sizes(r, r->envp, r->envc, count, size);
}

static uint32_t environ_get(wasm__run *r, uint32_t envp, uint32_t data)
{
    ENTER(r);
    return strings_get(r, r->envp, r->envc, envp, data);
}

/* ---- clocks, randomness, scheduling ------------------------------------ */

static bool host_clock(uint32_t id, clockid_t *out)
{
    switch (id) {
    case 0: *out = CLOCK_REALTIME; return true;
    case 1: *out = CLOCK_MONOTONIC; return true;
    /* The process's CPU clock would tell about other tenants: both are the thread's. */
    case 2: case 3: *out = CLOCK_THREAD_CPUTIME_ID; return true;
    default: return false;
    }
}

static uint32_t clock_res_get(wasm__run *r, uint32_t id, uint32_t out)
{
    ENTER(r);
    clockid_t c;
    struct timespec ts;
    if (!host_clock(id, &c) || clock_getres(c, &ts) != 0)
        return E_INVAL;
    return put_u64(r, out, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ? E_SUCCESS
                                                                                     : E_FAULT;
}

static uint32_t clock_time_get(wasm__run *r, uint32_t id, uint64_t precision, uint32_t out)
{
    ENTER(r);
    clockid_t c;
    struct timespec ts;
    if (!host_clock(id, &c) || clock_gettime(c, &ts) != 0)
        return E_INVAL;
    return put_u64(r, out, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ? E_SUCCESS
                                                                                     : E_FAULT;
}

static uint32_t random_get(wasm__run *r, uint32_t ptr, uint32_t len)
{
    ENTER(r);
    uint8_t *p = guest_ptr(r, ptr, len);
    if (!p)
        return E_FAULT;
    while (len) {
        CHECK_LIMITS(r); /* getrandom fills at most 32 MiB per call */
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return E_IO;
        p += n;
        len -= (uint32_t)n;
    }
    return E_SUCCESS;
}

static uint32_t sched_yield_(wasm__run *r)
{
    ENTER(r);
    sched_yield();
    return E_SUCCESS;
}

static void proc_exit(wasm__run *r, uint32_t code)
{
    r->exited = true;
    r->exit_code = (int)code;
    wasm__trap(r, WASM_TRAP_NONE); /* a clean end, not a trap */
}

/* Sleeps for clock subscriptions; fd subscriptions are always ready
 * (stdin is in memory, stdout and stderr never block). */
static uint32_t poll_oneoff(wasm__run *r, uint32_t in, uint32_t out, uint32_t nsubs,
                            uint32_t nevents_ptr)
{
    ENTER(r);
    const uint8_t *subs = guest_ptr(r, in, (uint64_t)nsubs * 48);
    uint8_t *events = guest_ptr(r, out, (uint64_t)nsubs * 32);
    if (!subs || !events)
        return E_FAULT;
    if (nsubs == 0)
        return E_INVAL;
    uint64_t now = clock_mono_ns(), earliest = UINT64_MAX;
    uint32_t nev = 0;
    for (uint32_t pass = 0; pass < 2 && nev == 0; pass++) {
        for (uint32_t i = 0; i < nsubs; i++) {
            const uint8_t *s = subs + 48 * i;
            uint8_t tag = s[8];
            uint64_t deadline = 0;
            if (tag == 0) {
                uint32_t id = get_u32(s + 16);
                uint64_t timeout = get_u64(s + 24);
                uint16_t flags = (uint16_t)(s[40] | s[41] << 8);
                if (flags & 1) { /* absolute */
                    if (id == 0) {
                        uint64_t real = (uint64_t)(clock_wall_ms() * 1e6);
                        deadline = timeout > real ? now + (timeout - real) : now;
                    } else {
                        deadline = timeout;
                    }
                } else {
                    deadline = now + timeout < now ? UINT64_MAX : now + timeout;
                }
                if (pass == 0) {
                    if (deadline < earliest)
                        earliest = deadline;
                    continue;
                }
                if (deadline > clock_mono_ns())
                    continue;
            } else if (pass == 1) {
                continue; /* fd events were answered in the first pass */
            }
            uint8_t *ev = events + 32 * nev++;
            memset(ev, 0, 32);
            memcpy(ev, s, 8); /* userdata */
            ev[10] = tag;
            if (tag == 1 || tag == 2) {
                uint32_t fd = get_u32(s + 16);
                uint64_t avail = fd == 0 && r->stdin_data ? r->stdin_data->len - r->stdin_off : 0;
                memcpy(ev + 16, &avail, 8);
            } else if (tag != 0) {
                ev[8] = E_INVAL;
            }
        }
        if (pass == 0 && nev == 0) {
            if (earliest > r->wall_deadline_ns) {
                earliest = r->wall_deadline_ns;
            }
            struct timespec ts = {.tv_sec = (time_t)(earliest / 1000000000u),
                                  .tv_nsec = (long)(earliest % 1000000000u)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                if (r->pending)
                    wasm__trap(r, (wasm_trap)r->pending);
            if (clock_mono_ns() >= r->wall_deadline_ns)
                wasm__trap(r, WASM_TRAP_WALL_LIMIT);
        }
    }
    return put_u32(r, nevents_ptr, nev) ? E_SUCCESS : E_FAULT;
}

/* ---- stdio ------------------------------------------------------------- */

static void flush_errline(wasm__run *r)
{
    if (++r->err_lines <= ERRLINES_MAX)
        log_info("wasm[%s] %.*s", r->cfg->tenant, (int)r->errline.len,
                 r->errline.data ? r->errline.data : "");
    else if (r->err_lines == ERRLINES_MAX + 1)
        log_warn("wasm[%s] more stderr lines dropped", r->cfg->tenant);
    buf_reset(&r->errline);
}

static void write_stderr(wasm__run *r, const uint8_t *p, size_t n)
{
    /* Past the cap nothing more is logged: not even reading the rest keeps
     * a flood from costing the worker more than the lines it logs. */
    while (n && r->err_lines <= ERRLINES_MAX) {
        size_t room = ERRLINE_MAX - r->errline.len;
        /* Search no further than the line can grow: a search to the end of
         * every chunk made one newline-free 64 MiB write cost seconds
         * (quadratic), all of it in the host where the CPU limit cannot
         * stop it. */
        const uint8_t *nl = memchr(p, '\n', n < room ? n : room);
        size_t seg = nl ? (size_t)(nl - p) : n, take = seg < room ? seg : room;
        buf_append(&r->errline, p, take);
        p += take;
        n -= take;
        if (n && *p == '\n') {
            flush_errline(r);
            p++;
            n--;
        } else if (r->errline.len == ERRLINE_MAX) {
            flush_errline(r);
        }
    }
}

void wasm__wasi_flush(wasm__run *r)
{
    if (r->errline.len)
        flush_errline(r);
}

static uint32_t fd_write(wasm__run *r, uint32_t fd, uint32_t iovs, uint32_t n, uint32_t nwritten)
{
    ENTER(r);
    if (fd == 0 || (fd < 3 && r->stdio_closed[fd]))
        return E_BADF;
    if (fd >= 3)
        return file_at(r, fd) ? E_NOTCAPABLE : E_BADF;
    const uint8_t *v = guest_ptr(r, iovs, (uint64_t)n * 8);
    if (!v)
        return E_FAULT;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        CHECK_LIMITS(r);
        uint32_t len = get_u32(v + 8 * i + 4);
        const uint8_t *p = guest_ptr(r, get_u32(v + 8 * i), len);
        if (!p)
            return E_FAULT;
        if (fd == 2) {
            write_stderr(r, p, len);
        } else if (buf_append(&r->out, p, len) < 0) {
            r->out_overflow = true;
            return E_FBIG;
        }
        total += len;
    }
    return put_u32(r, nwritten, (uint32_t)total) ? E_SUCCESS : E_FAULT;
}

static uint32_t fd_read(wasm__run *r, uint32_t fd, uint32_t iovs, uint32_t n, uint32_t nread)
{
    ENTER(r);
    wasm__file *f = NULL;
    if (fd != 0 && !(f = file_at(r, fd)))
        return E_BADF;
    if (fd == 0 && r->stdio_closed[0])
        return E_BADF;
    if (f && f->dir)
        return E_ISDIR;
    const uint8_t *v = guest_ptr(r, iovs, (uint64_t)n * 8);
    if (!v)
        return E_FAULT;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        CHECK_LIMITS(r);
        uint32_t len = get_u32(v + 8 * i + 4);
        uint8_t *p = guest_ptr(r, get_u32(v + 8 * i), len);
        if (!p)
            return E_FAULT;
        size_t got;
        if (!f) {
            size_t left = r->stdin_data ? r->stdin_data->len - r->stdin_off : 0;
            got = len < left ? len : left;
            if (got)
                memcpy(p, r->stdin_data->data + r->stdin_off, got);
            r->stdin_off += got;
        } else {
            ssize_t k = read(f->fd, p, len);
            if (k < 0)
                return host_errno(errno);
            got = (size_t)k;
        }
        total += got;
        if (got < len)
            break;
    }
    return put_u32(r, nread, (uint32_t)total) ? E_SUCCESS : E_FAULT;
}

/* ---- file descriptors -------------------------------------------------- */

static uint32_t fd_fdstat_get(wasm__run *r, uint32_t fd, uint32_t out)
{
    ENTER(r);
    uint8_t *p = guest_ptr(r, out, 24);
    if (!p)
        return E_FAULT;
    wasm__file *f = file_at(r, fd);
    if (fd < 3 ? r->stdio_closed[fd] : !f)
        return E_BADF;
    memset(p, 0, 24);
    /* Unknown, not a character device: libc then buffers stdout fully. */
    p[0] = fd < 3 ? FT_UNKNOWN : f->dir ? FT_DIR : FT_REG;
    uint64_t rights = UINT64_MAX; /* what is refused is refused at path_open and fd_write */
    memcpy(p + 8, &rights, 8);
    memcpy(p + 16, &rights, 8);
    return E_SUCCESS;
}

static void filestat(uint8_t *p, const struct stat *st)
{
    memset(p, 0, 64);
    uint64_t v[8] = {(uint64_t)st->st_dev, (uint64_t)st->st_ino, 0, (uint64_t)st->st_nlink,
                     (uint64_t)st->st_size,
                     (uint64_t)st->st_atim.tv_sec * 1000000000u + (uint64_t)st->st_atim.tv_nsec,
                     (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec,
                     (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec};
    memcpy(p, v, sizeof v);
    p[16] = S_ISDIR(st->st_mode) ? FT_DIR : S_ISREG(st->st_mode) ? FT_REG
          : S_ISLNK(st->st_mode) ? FT_SYMLINK : FT_UNKNOWN;
}

static uint32_t fd_filestat_get(wasm__run *r, uint32_t fd, uint32_t out)
{
    ENTER(r);
    uint8_t *p = guest_ptr(r, out, 64);
    if (!p)
        return E_FAULT;
    if (fd < 3) {
        if (r->stdio_closed[fd])
            return E_BADF;
        memset(p, 0, 64);
        return E_SUCCESS;
    }
    wasm__file *f = file_at(r, fd);
    struct stat st;
    if (!f)
        return E_BADF;
    if (fstat(f->fd, &st) != 0)
        return host_errno(errno);
    filestat(p, &st);
    return E_SUCCESS;
}

static uint32_t fd_seek(wasm__run *r, uint32_t fd, uint64_t offset, uint32_t whence, uint32_t out)
{
    ENTER(r);
    wasm__file *f = file_at(r, fd);
    if (fd < 3 || (f && f->dir))
        return E_SPIPE;
    if (!f)
        return E_BADF;
    if (whence > 2)
        return E_INVAL;
    /* WASI's whence values are POSIX's SEEK_SET, SEEK_CUR, SEEK_END. */
    off_t at = lseek(f->fd, (off_t)offset, (int)whence);
    if (at < 0)
        return host_errno(errno);
    return put_u64(r, out, (uint64_t)at) ? E_SUCCESS : E_FAULT;
}

static uint32_t fd_tell(wasm__run *r, uint32_t fd, uint32_t out)
{
    return fd_seek(r, fd, 0, 1, out);
}

static void close_file(wasm__file *f)
{
    if (f->dirp)
        closedir(f->dirp);
    if (f->fd >= 0)
        close(f->fd);
    f->dirp = NULL;
    f->fd = -1;
}

static uint32_t fd_close(wasm__run *r, uint32_t fd)
{
    ENTER(r);
    if (fd < 3) {
        if (r->stdio_closed[fd])
            return E_BADF;
        r->stdio_closed[fd] = true;
        return E_SUCCESS;
    }
    wasm__file *f = file_at(r, fd);
    if (!f)
        return E_BADF;
    close_file(f);
    return E_SUCCESS;
}

void wasm__wasi_close(wasm__run *r)
{
    for (size_t i = 0; i < WASM_MAX_FILES; i++)
        close_file(&r->files[i]);
}

static uint32_t fd_prestat_get(wasm__run *r, uint32_t fd, uint32_t out)
{
    ENTER(r);
    if (fd != 3 || !r->cfg->preopen_dir || !file_at(r, 3))
        return E_BADF;
    uint8_t *p = guest_ptr(r, out, 8);
    if (!p)
        return E_FAULT;
    uint32_t len = (uint32_t)strlen(r->cfg->preopen_guest);
    memset(p, 0, 8);
    memcpy(p + 4, &len, 4);
    return E_SUCCESS;
}

static uint32_t fd_prestat_dir_name(wasm__run *r, uint32_t fd, uint32_t path, uint32_t len)
{
    ENTER(r);
    if (fd != 3 || !r->cfg->preopen_dir || !file_at(r, 3))
        return E_BADF;
    size_t n = strlen(r->cfg->preopen_guest);
    if (len < n)
        return E_NAMETOOLONG;
    uint8_t *p = guest_ptr(r, path, n);
    if (!p)
        return E_FAULT;
    memcpy(p, r->cfg->preopen_guest, n);
    return E_SUCCESS;
}

/* ---- the preopened directory ------------------------------------------- */

/* A host copy of a guest path, or a WASI errno. */
static uint32_t guest_path(wasm__run *r, uint32_t ptr, uint32_t len, char **out)
{
    if (len > PATH_MAX_GUEST)
        return E_NAMETOOLONG;
    const uint8_t *p = guest_ptr(r, ptr, len);
    if (!p)
        return E_FAULT;
    if (memchr(p, '\0', len))
        return E_INVAL;
    *out = xstrndup((const char *)p, len);
    return E_SUCCESS;
}

/* openat2 beneath `dir`: "..", absolute paths and symlinks that would lead
 * out of it fail with EXDEV; /proc-style magic links are refused. Unlike
 * openat, openat2 refuses O_PATH combined with any flag but O_DIRECTORY,
 * O_NOFOLLOW and O_CLOEXEC (EINVAL), so O_NOCTTY only goes with real opens. */
static int open_beneath(int dir, const char *path, uint64_t flags)
{
    struct open_how how = {.flags = flags | O_CLOEXEC | ((flags & O_PATH) ? 0 : O_NOCTTY),
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, dir, path, &how, sizeof how);
}

static uint32_t path_open(wasm__run *r, uint32_t dirfd, uint32_t dirflags, uint32_t path,
                          uint32_t path_len, uint32_t oflags, uint64_t rights, uint64_t inheriting,
                          uint32_t fdflags, uint32_t out)
{
    ENTER(r);
    wasm__file *d = file_at(r, dirfd);
    if (!d)
        return E_BADF;
    if (!d->dir)
        return E_NOTDIR;
    if ((oflags & OFLAGS_WRITE) || (rights & RIGHT_FD_WRITE) || (fdflags & FDFLAGS_WRITE))
        return E_NOTCAPABLE; /* the directory is shared read-only */
    size_t slot = 0;
    while (slot < WASM_MAX_FILES && r->files[slot].fd >= 0)
        slot++;
    if (slot == WASM_MAX_FILES)
        return E_MFILE;
    char *p = NULL;
    uint32_t rc = guest_path(r, path, path_len, &p);
    if (rc != E_SUCCESS)
        return rc;
    uint64_t flags = O_RDONLY | O_NONBLOCK | ((oflags & OFLAG_DIRECTORY) ? O_DIRECTORY : 0) |
                     ((dirflags & 1) ? 0 : O_NOFOLLOW);
    int fd = open_beneath(d->fd, p, flags);
    free(p);
    if (fd < 0)
        return host_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        close(fd); /* devices and FIFOs could block or leak */
        return E_ACCES;
    }
    r->files[slot].fd = fd;
    r->files[slot].dir = S_ISDIR(st.st_mode);
    r->files[slot].dirp = NULL;
    return put_u32(r, out, (uint32_t)(slot + 3)) ? E_SUCCESS : E_FAULT;
}

static uint32_t path_filestat_get(wasm__run *r, uint32_t dirfd, uint32_t flags, uint32_t path,
                                  uint32_t path_len, uint32_t out)
{
    ENTER(r);
    wasm__file *d = file_at(r, dirfd);
    if (!d)
        return E_BADF;
    uint8_t *o = guest_ptr(r, out, 64);
    if (!o)
        return E_FAULT;
    char *p = NULL;
    uint32_t rc = guest_path(r, path, path_len, &p);
    if (rc != E_SUCCESS)
        return rc;
    int fd = open_beneath(d->fd, p, O_PATH | ((flags & 1) ? 0 : O_NOFOLLOW));
    free(p);
    if (fd < 0)
        return host_errno(errno);
    struct stat st;
    int ok = fstat(fd, &st);
    int saved = errno;
    close(fd);
    if (ok != 0)
        return host_errno(saved);
    filestat(o, &st);
    return E_SUCCESS;
}

static uint32_t fd_readdir(wasm__run *r, uint32_t fd, uint32_t bufp, uint32_t buf_len,
                           uint64_t cookie, uint32_t used_ptr)
{
    ENTER(r);
    wasm__file *f = file_at(r, fd);
    if (!f)
        return E_BADF;
    if (!f->dir)
        return E_NOTDIR;
    uint8_t *out = guest_ptr(r, bufp, buf_len);
    if (!out)
        return E_FAULT;
    if (!f->dirp) {
        int dup_fd = openat(f->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dup_fd < 0 || !(f->dirp = fdopendir(dup_fd))) {
            if (dup_fd >= 0)
                close(dup_fd);
            return host_errno(errno);
        }
    }
    /* The cookie is an entry's index: simple, and stable while nobody
     * writes to the directory, which is read-only here. */
    rewinddir(f->dirp);
    uint64_t idx = 0;
    uint32_t used = 0;
    struct dirent *de;
    while (used < buf_len && (de = readdir(f->dirp))) {
        if (idx++ < cookie)
            continue;
        uint8_t hdr[24] = {0};
        uint64_t ino = de->d_ino;
        uint32_t namlen = (uint32_t)strlen(de->d_name);
        memcpy(hdr, &idx, 8); /* d_next */
        memcpy(hdr + 8, &ino, 8);
        memcpy(hdr + 16, &namlen, 4);
        hdr[20] = de->d_type == DT_DIR ? FT_DIR : de->d_type == DT_REG ? FT_REG
                : de->d_type == DT_LNK ? FT_SYMLINK : FT_UNKNOWN;
        /* A truncated last entry tells libc to call again with a bigger buffer. */
        uint32_t n = buf_len - used < 24 ? buf_len - used : 24;
        memcpy(out + used, hdr, n);
        used += n;
        n = buf_len - used < namlen ? buf_len - used : namlen;
        memcpy(out + used, de->d_name, n);
        used += n;
    }
    return put_u32(r, used_ptr, used) ? E_SUCCESS : E_FAULT;
}

/* ---- the table --------------------------------------------------------- */

#define HOST(name, params, result, fn) {name, params, result, (wasm__fn)(fn), 0}
#define STUB(name, params, errno_) {name, params, 'i', NULL, errno_}

const wasm__import wasm__imports[] = {
    HOST("args_get", "ii", 'i', args_get),
    HOST("args_sizes_get", "ii", 'i', args_sizes_get),
    HOST("clock_res_get", "ii", 'i', clock_res_get),
    HOST("clock_time_get", "iIi", 'i', clock_time_get),
    HOST("environ_get", "ii", 'i', environ_get),
    HOST("environ_sizes_get", "ii", 'i', environ_sizes_get),
    STUB("fd_advise", "iIIi", E_SUCCESS),
    STUB("fd_allocate", "iII", E_NOTCAPABLE),
    HOST("fd_close", "i", 'i', fd_close),
    STUB("fd_datasync", "i", E_NOTCAPABLE),
    HOST("fd_fdstat_get", "ii", 'i', fd_fdstat_get),
    STUB("fd_fdstat_set_flags", "ii", E_NOSYS),
    STUB("fd_fdstat_set_rights", "iII", E_NOTCAPABLE),
    HOST("fd_filestat_get", "ii", 'i', fd_filestat_get),
    STUB("fd_filestat_set_size", "iI", E_NOTCAPABLE),
    STUB("fd_filestat_set_times", "iIIi", E_NOTCAPABLE),
    STUB("fd_pread", "iiiIi", E_NOSYS),
    HOST("fd_prestat_dir_name", "iii", 'i', fd_prestat_dir_name),
    HOST("fd_prestat_get", "ii", 'i', fd_prestat_get),
    STUB("fd_pwrite", "iiiIi", E_NOTCAPABLE),
    HOST("fd_read", "iiii", 'i', fd_read),
    HOST("fd_readdir", "iiiIi", 'i', fd_readdir),
    STUB("fd_renumber", "ii", E_NOSYS),
    HOST("fd_seek", "iIii", 'i', fd_seek),
    STUB("fd_sync", "i", E_NOTCAPABLE),
    HOST("fd_tell", "ii", 'i', fd_tell),
    HOST("fd_write", "iiii", 'i', fd_write),
    STUB("path_create_directory", "iii", E_NOTCAPABLE),
    HOST("path_filestat_get", "iiiii", 'i', path_filestat_get),
    STUB("path_filestat_set_times", "iiiiIIi", E_NOTCAPABLE),
    STUB("path_link", "iiiiiii", E_NOTCAPABLE),
    HOST("path_open", "iiiiiIIii", 'i', path_open),
    STUB("path_readlink", "iiiiii", E_NOTCAPABLE),
    STUB("path_remove_directory", "iii", E_NOTCAPABLE),
    STUB("path_rename", "iiiiii", E_NOTCAPABLE),
    STUB("path_symlink", "iiiii", E_NOTCAPABLE),
    STUB("path_unlink_file", "iii", E_NOTCAPABLE),
    HOST("poll_oneoff", "iiii", 'i', poll_oneoff),
    HOST("proc_exit", "i", 'v', proc_exit),
    STUB("proc_raise", "i", E_NOSYS),
    HOST("random_get", "ii", 'i', random_get),
    HOST("sched_yield", "", 'i', sched_yield_),
    STUB("sock_accept", "iii", E_NOSYS),
    STUB("sock_recv", "iiiiii", E_NOSYS),
    STUB("sock_send", "iiiii", E_NOSYS),
    STUB("sock_shutdown", "ii", E_NOSYS),
};
const size_t wasm__nimports = sizeof wasm__imports / sizeof *wasm__imports;
