/* `models pull`: a source (URL or hf: reference) mapped to a URL, downloaded into NAME.gguf.part
 * with resume (Range), checked (GGUF header, data extent, sha256), renamed into place and
 * recorded in the folder's manifest. A file that fails a check is removed; an interrupted one is
 * kept for the next pull to resume. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/internal.h"
#include "upstream/upstream.h"

#define HF_BASE      "https://huggingface.co/"
#define HF_REV       "main"
#define NAME_MAX_LEN 128
/* Deadlines of a download: connecting, and the longest silence; a slow link is fine. */
#define CONNECT_MS 30000u
#define IDLE_MS    120000u
/* The progress bar redraws at most this often. */
#define PROGRESS_EVERY_NS (200u * 1000u * 1000u)
#define BAR_WIDTH         24

/* ---------------------------------------------------------------------------------------------
 * Sources
 * ------------------------------------------------------------------------------------------- */
static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool sb_models_name_valid(const char *name)
{
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        if (!name_char(name[n]))
            return false;
    }
    return n >= 1 && n <= NAME_MAX_LEN && name[0] != '.';
}

/* Writes seg's name without ".gguf" into name when seg ends in .gguf and the rest is a valid
 * name; else leaves name empty. */
static void name_from_file(const char *seg, size_t len, char *name, size_t size)
{
    name[0] = '\0';
    if (len <= 5 || strncasecmp(seg + len - 5, ".gguf", 5) != 0 || len - 5 >= size)
        return;
    memcpy(name, seg, len - 5);
    name[len - 5] = '\0';
    if (!sb_models_name_valid(name))
        name[0] = '\0';
}

/* True when [p, p + n) is one path segment a URL may carry as is: not empty, not . or .., and
 * only name characters (plus '+'). */
static bool segment_ok(const char *p, size_t n)
{
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!name_char(p[i]) && p[i] != '+')
            return false;
    }
    return true;
}

/* http:// and https:// URLs are fetched as given. */
static int map_url(const char *source, const char *rest, struct sb_buf *url, char *name,
                   size_t name_size, char *why, size_t why_size)
{
    for (const char *c = source; *c != '\0'; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(why, why_size, "the URL contains a space or control character");
            return SB_EINVAL;
        }
    }
    size_t host = strcspn(rest, "/?#");
    if (host == 0) {
        snprintf(why, why_size, "the URL has no host");
        return SB_EINVAL;
    }
    const char *path = rest + host;
    const char *end = path + strcspn(path, "?#");
    const char *last = end;
    while (last > path && last[-1] != '/')
        last--;
    name_from_file(last, (size_t)(end - last), name, name_size);
    return sb_buf_append_c(url, source) == 0 ? 0 : SB_ENOMEM;
}

/* hf:ORG/REPO[@REV]/PATH.gguf -> https://huggingface.co/ORG/REPO/resolve/REV/PATH.gguf */
static int map_hf(const char *source, const char *rest, struct sb_buf *url, char *name,
                  size_t name_size, char *why, size_t why_size)
{
    SB_UNUSED(source);
    static const char usage[] =
        "expected hf:ORG/REPO/FILE.gguf (or hf:ORG/REPO@REVISION/FILE.gguf)";
    const char *org = rest;
    size_t n_org = strcspn(org, "/");
    const char *repo = org + n_org + (org[n_org] == '/');
    size_t n_repo = strcspn(repo, "/@");
    const char *rev = HF_REV;
    size_t n_rev = strlen(HF_REV);
    const char *after = repo + n_repo;
    if (*after == '@') {
        rev = after + 1;
        n_rev = strcspn(rev, "/");
        after = rev + n_rev;
    }
    if (org[n_org] != '/' || !segment_ok(org, n_org) || !segment_ok(repo, n_repo) ||
        !segment_ok(rev, n_rev) || *after != '/') {
        snprintf(why, why_size, "%s", usage);
        return SB_EINVAL;
    }
    const char *path = after + 1;
    const char *seg = path;
    for (;;) {
        size_t n = strcspn(seg, "/");
        if (!segment_ok(seg, n)) {
            snprintf(why, why_size, "%s; \"%.*s\" is not a usable file or folder name", usage,
                     (int)n, seg);
            return SB_EINVAL;
        }
        if (seg[n] == '\0') {
            name_from_file(seg, n, name, name_size);
            if (n <= 5 || strcasecmp(seg + n - 5, ".gguf") != 0) {
                snprintf(why, why_size, "%s; the file must be a .gguf", usage);
                return SB_EINVAL;
            }
            break;
        }
        seg += n + 1;
    }
    int rc = sb_buf_printf(url, HF_BASE "%.*s/%.*s/resolve/%.*s/%s", (int)n_org, org, (int)n_repo,
                           repo, (int)n_rev, rev, path);
    return rc == 0 ? 0 : SB_ENOMEM;
}

/* The kinds of source `pull` takes, by prefix (case-insensitive). */
static const struct {
    const char *prefix;
    int (*map)(const char *source, const char *rest, struct sb_buf *url, char *name,
               size_t name_size, char *why, size_t why_size);
} sources[] = {
    {"hf:", map_hf},       /* Hugging Face: hf:ORG/REPO[@REV]/FILE.gguf */
    {"https://", map_url}, /* any HTTPS URL */
    {"http://", map_url},  /* plain HTTP: loopback mirrors and tests */
};

int sb_models_source_url(const char *source, struct sb_buf *url, char *name, size_t name_size,
                         char *why, size_t why_size)
{
    name[0] = '\0';
    for (size_t i = 0; i < SB_ARRAY_LEN(sources); i++) {
        size_t n = strlen(sources[i].prefix);
        if (strncasecmp(source, sources[i].prefix, n) == 0)
            return sources[i].map(source, source + n, url, name, name_size, why, why_size);
    }
    snprintf(why, why_size,
             "unknown source \"%s\": give an https:// (or http://) URL or hf:ORG/REPO/FILE.gguf",
             source);
    return SB_EINVAL;
}

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */
/* Creates dir and its missing parents. Returns 0 or -1 with errno. */
static int make_dirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * One transfer
 * ------------------------------------------------------------------------------------------- */
struct transfer {
    int fd;              /* the .part, positioned at its end */
    uint64_t asked_from; /* the Range start sent; 0 = none */
    uint64_t have;       /* bytes in the .part */
    uint64_t start_have; /* bytes it had when the body began, for the rate */
    int64_t total;       /* the whole file's size; -1 = unknown */
    int status;          /* the response's status; 0 = none yet */
    bool restart;        /* the server would not resume at asked_from: start over */
    int write_errno;     /* a write to the .part failed */
    bool progress;       /* draw a bar */
    uint64_t t0, last_draw;
};

/* Redraws the progress line: bar, bytes, percent, MB/s, ETA. */
static void draw(struct transfer *t, bool last)
{
    if (!t->progress)
        return;
    uint64_t now = sb_now_ns();
    if (!last && now - t->last_draw < PROGRESS_EVERY_NS)
        return;
    t->last_draw = now;
    double secs = (double)(now - t->t0) / 1e9;
    double rate = secs > 0 ? (double)(t->have - t->start_have) / secs : 0;
    char have[32], total[32], speed[32], eta[32] = "--:--";
    sb__models_human_bytes((double)t->have, have, sizeof have);
    sb__models_human_bytes(rate, speed, sizeof speed);
    if (t->total > 0) {
        double frac = (double)t->have / (double)t->total;
        if (frac > 1)
            frac = 1;
        char bar[BAR_WIDTH + 1];
        int full = (int)(frac * BAR_WIDTH);
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < full ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        if (rate > 0) {
            uint64_t left = (uint64_t)((double)((uint64_t)t->total - t->have) / rate);
            snprintf(eta, sizeof eta, "%llu:%02llu:%02llu", (unsigned long long)(left / 3600),
                     (unsigned long long)(left / 60 % 60), (unsigned long long)(left % 60));
        }
        sb__models_human_bytes((double)t->total, total, sizeof total);
        fprintf(stderr, "\r  [%s] %s / %s  %5.1f%%  %s/s  ETA %s\033[K", bar, have, total,
                frac * 100, speed, eta);
    } else {
        fprintf(stderr, "\r  %s  %s/s\033[K", have, speed);
    }
    if (last)
        fputc('\n', stderr);
}

static int on_response(void *ud, int status, int64_t range_start, int64_t length)
{
    struct transfer *t = ud;
    t->status = status;
    if (t->asked_from > 0 && status == 206) {
        if (range_start < 0 || (uint64_t)range_start != t->asked_from) {
            t->restart = true;
            return 1;
        }
        t->total = length >= 0 ? (int64_t)t->asked_from + length : -1;
        return 0;
    }
    if (t->asked_from > 0 && status == 416) {
        t->restart = true; /* the part is as long as the file, or longer: start over */
        return 1;
    }
    if (status != 200)
        return 1;
    if (t->asked_from > 0) {
        /* The server ignored the Range and sends the whole file: start over in place. */
        fprintf(stderr, "switchboard: the server does not resume downloads (it answered 200 "
                        "to a range request); starting over\n");
        if (ftruncate(t->fd, 0) != 0 || lseek(t->fd, 0, SEEK_SET) < 0) {
            t->write_errno = errno;
            return 1;
        }
        t->have = 0;
        t->start_have = 0;
    }
    t->total = length;
    return 0;
}

static int on_data(void *ud, const char *p, size_t len)
{
    struct transfer *t = ud;
    if (write_all(t->fd, p, len) != 0) {
        t->write_errno = errno;
        return 1;
    }
    t->have += len;
    draw(t, false);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * pull
 * ------------------------------------------------------------------------------------------- */
/* Removes the download after a failed check and says so in msg. */
static void discard(const char *part, struct sb_buf *msg)
{
    if (unlink(part) == 0)
        sb_buf_printf(msg, "; removed %s", part);
}

/* Records what was pulled in DIR/manifest.json, under the folder's lock. */
static int record(const char *dir, const struct sb_models_entry *e, char *why, size_t why_size)
{
    int fd = sb__models_lock(dir, why, why_size);
    if (fd < 0)
        return fd;
    struct sb_models_manifest m;
    int rc = sb_models_manifest_load(dir, &m, why, why_size);
    if (rc == 0)
        rc = sb_models_manifest_put(&m, e);
    if (rc == 0)
        rc = sb_models_manifest_save(dir, &m, why, why_size);
    if (rc == SB_ENOMEM)
        snprintf(why, why_size, "out of memory");
    sb_models_manifest_free(&m);
    sb__models_unlock(fd);
    return rc;
}

/* Downloads into fd (the .part, holding *have bytes), once with a Range when there is something
 * to resume and once more from zero when the server will not resume there. */
static int download(const struct sb__models_pull *p, const char *url, const char *const *headers,
                    size_t n_headers, int fd, uint64_t *have, struct transfer *t, char *why,
                    size_t why_size)
{
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (lseek(fd, (off_t)*have, SEEK_SET) < 0) {
            t->write_errno = errno;
            return SB_EIO;
        }
        *t = (struct transfer){.fd = fd,
                               .asked_from = *have,
                               .have = *have,
                               .start_have = *have,
                               .total = -1,
                               .progress = p->progress,
                               .t0 = sb_now_ns()};
        if (*have > 0)
            fprintf(stderr, "switchboard: resuming %s at byte %llu\n", url,
                    (unsigned long long)*have);
        else
            fprintf(stderr, "switchboard: downloading %s\n", url);
        struct sb_upstream_download d = {
            .url = url,
            .headers = headers,
            .n_headers = n_headers,
            .range_from = *have,
            .connect_ms = CONNECT_MS,
            .idle_ms = IDLE_MS,
            .on_response = on_response,
            .on_data = on_data,
            .ud = t,
        };
        rc = sb_upstream_download(&d, why, why_size);
        if (t->status == 200 || t->status == 206)
            draw(t, true);
        *have = t->have;
        if (!t->restart || attempt > 0)
            break;
        fprintf(stderr,
                "switchboard: the server did not resume at byte %llu (status %d); starting "
                "over\n",
                (unsigned long long)t->asked_from, t->status);
        if (ftruncate(fd, 0) != 0) {
            t->write_errno = errno;
            return SB_EIO;
        }
        *have = 0;
    }
    return rc;
}

/* Checks the downloaded part: a GGUF header, metadata whose tensors fit in the file, and the
 * expected sha256 when one was given; writes the hash into sha. Removes the part on failure. */
static int verify(const struct sb__models_pull *p, const char *part, uint64_t size, char sha[65],
                  struct sb_buf *msg)
{
    char why[1024];
    struct sb_models_gguf_info info;
    int rc = sb_models_gguf_read_info(part, &info, why, sizeof why);
    if (rc == SB_EIO) {
        sb_buf_printf(msg, "%s", why);
        return rc;
    }
    if (rc != 0) {
        sb_buf_printf(msg, "%s: %s", p->source, why);
        discard(part, msg);
        return SB_EUPSTREAM;
    }
    if (info.data_end > size) {
        sb_buf_printf(msg, "%s: the GGUF is truncated: its tensors need %llu bytes, it has %llu",
                      p->source, (unsigned long long)info.data_end, (unsigned long long)size);
        discard(part, msg);
        return SB_EUPSTREAM;
    }
    rc = sb_models_sha256_file(part, sha, why, sizeof why);
    if (rc != 0) {
        sb_buf_printf(msg, "%s", why);
        return rc;
    }
    if (p->sha256 != NULL && strcasecmp(p->sha256, sha) != 0) {
        char want[65];
        sb__models_sha256_lower(p->sha256, want);
        sb_buf_printf(msg, "%s: sha256 mismatch: expected %s got %s", p->source, want, sha);
        discard(part, msg);
        return SB_EUPSTREAM;
    }
    return 0;
}

int sb__models_pull(const struct sb__models_pull *p, struct sb_buf *msg)
{
    int rc;
    int fd = -1;
    char why[1024] = "";
    char name_buf[NAME_MAX_LEN + 1];
    char *final_path = NULL, *part = NULL, *auth = NULL;
    struct sb_buf url, paths;
    sb_buf_init(&url, 16 << 10);
    sb_buf_init(&paths, 16 << 10);

    rc = sb_models_source_url(p->source, &url, name_buf, sizeof name_buf, why, sizeof why);
    if (rc != 0) {
        sb_buf_printf(msg, "%s", rc == SB_EINVAL ? why : "out of memory");
        goto fail;
    }
    const char *name = p->name != NULL ? p->name : name_buf;
    rc = SB_EINVAL;
    if (name[0] == '\0') {
        sb_buf_printf(msg, "cannot tell a model name from %s; give one with --name NAME",
                      p->source);
        goto fail;
    }
    if (!sb_models_name_valid(name)) {
        sb_buf_printf(msg,
                      "--name \"%s\": a name is 1 to %d letters, digits, '.', '_' or '-', not "
                      "starting with '.'",
                      name, NAME_MAX_LEN);
        goto fail;
    }
    if (p->sha256 != NULL && !sb_models_sha256_valid(p->sha256)) {
        sb_buf_printf(msg, "--sha256 \"%s\" is not a sha256 (64 hex digits)", p->sha256);
        goto fail;
    }
    rc = SB_ENOMEM;
    if (sb_buf_printf(&paths, "%s/%s.gguf", p->dir, name) != 0)
        goto fail;
    final_path = sb_buf_steal(&paths);
    if (final_path == NULL || sb_buf_printf(&paths, "%s%s", final_path, SB__MODELS_PART) != 0)
        goto fail;
    part = sb_buf_steal(&paths);
    if (part == NULL)
        goto fail;
    if (access(final_path, F_OK) == 0) {
        sb_buf_printf(msg,
                      "%s already exists; remove it first (switchboard models rm %s) or pull "
                      "under another --name",
                      final_path, name);
        rc = SB_EINVAL;
        goto fail;
    }

    rc = SB_EIO;
    char eb[128];
    if (make_dirs(p->dir) != 0) {
        sb_buf_printf(msg, "cannot create the models folder %s: %s", p->dir,
                      sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        sb_buf_printf(msg, "cannot open %s: %s", part, sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        sb_buf_printf(msg, "another pull is writing %s; wait for it to finish", part);
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sb_buf_printf(msg, "cannot stat %s: %s", part, sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    uint64_t have = (uint64_t)st.st_size;

    /* Gated Hugging Face repositories want a token; it goes only to huggingface.co. */
    const char *headers[1];
    size_t n_headers = 0;
    const char *token = getenv("HF_TOKEN");
    if (strncasecmp(p->source, "hf:", 3) == 0 && token != NULL && token[0] != '\0') {
        rc = SB_ENOMEM;
        if (sb_buf_printf(&paths, "Authorization: Bearer %s", token) != 0)
            goto fail;
        auth = sb_buf_steal(&paths);
        if (auth == NULL)
            goto fail;
        headers[n_headers++] = auth;
    }

    struct transfer t;
    rc = download(p, url.p, headers, n_headers, fd, &have, &t, why, sizeof why);
    if (t.write_errno != 0) {
        sb_buf_printf(msg, "cannot write %s: %s", part,
                      sb__models_errno_text(t.write_errno, eb, sizeof eb));
        rc = SB_EIO;
        goto fail;
    }
    if (t.status != 0 && t.status != 200 && t.status != 206) {
        sb_buf_printf(msg, "%s answered HTTP %d; check the source", url.p, t.status);
        if (have == 0)
            unlink(part); /* nothing to resume */
        rc = SB_EUPSTREAM;
        goto fail;
    }
    if (rc == 0 && t.total >= 0 && have != (uint64_t)t.total)
        rc = SB_ECONNECT; /* the body ended short without the connection saying so */
    if (rc == SB_ECONNECT || rc == SB_ETIMEOUT) {
        sb_buf_printf(msg, "the download was interrupted after %llu", (unsigned long long)have);
        if (t.total >= 0)
            sb_buf_printf(msg, " of %lld", (long long)t.total);
        sb_buf_printf(msg, " bytes (%s); %s is kept: run the same command again to resume",
                      why[0] ? why : "the connection ended early", part);
        goto fail;
    }
    if (rc != 0) {
        sb_buf_printf(msg, "cannot download %s: %s", url.p, why);
        goto fail;
    }
    if (fsync(fd) != 0) {
        sb_buf_printf(msg, "cannot write %s: %s", part,
                      sb__models_errno_text(errno, eb, sizeof eb));
        rc = SB_EIO;
        goto fail;
    }

    char sha[65];
    rc = verify(p, part, have, sha, msg);
    if (rc != 0)
        goto fail;
    if (rename(part, final_path) != 0) {
        sb_buf_printf(msg, "cannot rename %s to %s: %s", part, final_path,
                      sb__models_errno_text(errno, eb, sizeof eb));
        rc = SB_EIO;
        goto fail;
    }
    struct sb_models_entry e = {
        .name = (char *)name,
        .source = (char *)p->source,
        .size = (int64_t)have,
        .pulled_at = sb_unix_time(),
    };
    snprintf(e.sha256, sizeof e.sha256, "%s", sha);
    rc = record(p->dir, &e, why, sizeof why);
    if (rc != 0) {
        sb_buf_printf(msg, "%s is in place, but %s/%s could not be updated: %s", final_path, p->dir,
                      SB__MODELS_MANIFEST, why);
        goto fail;
    }
    sb_buf_printf(msg, "pulled %s: %s, %llu bytes, sha256 %s", name, final_path,
                  (unsigned long long)have, sha);
fail:
    if (fd >= 0)
        close(fd);
    free(auth);
    free(part);
    free(final_path);
    sb_buf_free(&paths);
    sb_buf_free(&url);
    return rc;
}
