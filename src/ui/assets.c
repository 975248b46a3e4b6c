/* The dashboard's files, compiled in from ui/ by scripts/embed.sh (the Makefile's ui_assets rule),
 * with the URL that serves each, its Content-Type and an ETag computed once from its bytes. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ui/ui.h"

/* Defined in the generated $(BUILD)/gen/ui_assets.c: each file's bytes, NUL-terminated. */
extern const char sb__ui_index_html[];
extern const char sb__ui_app_css[];
extern const char sb__ui_app_js[];
extern const char sb__ui_favicon_svg[];

struct file {
    const char *path;         /* the URL path */
    const char *content_type; /* with its charset */
    const char *text;         /* the compiled-in bytes */
};

/* One row per URL; the page itself answers with or without the trailing slash. */
static const struct file files[] = {
    {"/ui", "text/html; charset=utf-8", sb__ui_index_html},
    {"/ui/", "text/html; charset=utf-8", sb__ui_index_html},
    {"/ui/app.css", "text/css; charset=utf-8", sb__ui_app_css},
    {"/ui/app.js", "text/javascript; charset=utf-8", sb__ui_app_js},
    {"/ui/favicon.svg", "image/svg+xml", sb__ui_favicon_svg},
};

#define N_FILES (sizeof(files) / sizeof(files[0]))

static struct sb_ui_asset assets[N_FILES];
static char etags[N_FILES][24];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* FNV-1a, 64 bits: a validator, not a security measure; it changes whenever a file does. */
static uint64_t fnv1a(struct sb_str s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void init_assets(void)
{
    for (size_t i = 0; i < N_FILES; i++) {
        struct sb_str body = sb_str_c(files[i].text);
        snprintf(etags[i], sizeof(etags[i]), "\"%016llx\"", (unsigned long long)fnv1a(body));
        assets[i] = (struct sb_ui_asset){files[i].path, files[i].content_type, body, etags[i]};
    }
}

const struct sb_ui_asset *sb_ui_assets(size_t *n)
{
    pthread_once(&once, init_assets);
    *n = N_FILES;
    return assets;
}

const struct sb_ui_asset *sb_ui_asset_find(const char *path)
{
    size_t n;
    const struct sb_ui_asset *a = sb_ui_assets(&n);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].path, path) == 0)
            return &a[i];
    }
    return NULL;
}
