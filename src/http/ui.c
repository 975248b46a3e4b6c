/* The dashboard over HTTP (docs/dashboard.md): the page and its files from the binary, with an ETag
 * and a Content-Security-Policy that lets the page load nothing but itself; the JSON summary it
 * polls; and the recording of each finished model request into the server's ring. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/internal.h"
#include "ui/ui.h"

/* The page runs its own script and style files and talks to its own origin; nothing inline,
 * nothing from elsewhere, no framing. */
static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                          "form-action 'none'; frame-ancestors 'none'";

struct header {
    const char *name;
    const char *value;
};

/* What every dashboard response carries besides the standard headers. */
static const struct header common_headers[] = {
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
};

/* The files: revalidated on every load (cheap with the ETag), so a new binary's page is never
 * mixed with an old script from a cache. */
static const struct header asset_headers[] = {
    {"Content-Security-Policy", csp},
    {"X-Frame-Options", "DENY"},
    {"Cache-Control", "no-cache"},
};

/* The summary is live: never stored. */
static const struct header summary_headers[] = {
    {"Cache-Control", "no-store"},
};

static void add_headers(struct sb__req *r, const struct header *h, size_t n)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);

    for (size_t i = 0; i < n; i++)
        evhttp_add_header(out, h[i].name, h[i].value);
}

static int64_t unix_ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------------------------- */
int sb__ui_init(struct sb_server *s)
{
    const struct sb_ui_config *c = &s->cfg->ui;

    s->started_ms = unix_ms_now();
    if (gethostname(s->instance, sizeof(s->instance) - 1) != 0)
        s->instance[0] = '\0';
    s->instance[sizeof(s->instance) - 1] = '\0';
    if (!c->enabled)
        return 0;
    return sb_ui_new(SB_MIN(SB_MAX(c->recent, (size_t)1), (size_t)SB_UI_MAX_RECENT), &s->ui);
}

void sb__ui_deinit(struct sb_server *s)
{
    sb_ui_free(s->ui);
    s->ui = NULL;
}

void sb__ui_record(struct sb_server *s, const struct sb__meter *m, const struct sb_ledger_row *row)
{
    struct sb_ui_decision d = {
        .ts_ms = row->ts_ms,
        .status = row->status,
        .attempts = row->attempts,
        .prompt_tokens = row->prompt_tokens,
        .completion_tokens = row->completion_tokens,
        .cost_microusd = row->cost_microusd,
        .latency_ms = row->latency_ms,
        .ttft_ms = row->ttft_ms,
        .streamed = row->streamed,
    };

    if (s->ui == NULL)
        return;
    sb_ledger_copy(d.request_id, sizeof(d.request_id), sb_str_c(row->request_id));
    sb_ledger_copy(d.api, sizeof(d.api), sb_str_c(sb_ledger_api_name(row->api)));
    sb_ledger_copy(d.model, sizeof(d.model), sb_str_c(row->model));
    sb_ledger_copy(d.backend, sizeof(d.backend), sb_str_c(row->backend));
    /* The meter's rule, not the row's: the row stores the default policy as "". */
    sb_ledger_copy(d.rule, sizeof(d.rule), sb_str_c(m->rule));
    sb_ledger_copy(d.reason, sizeof(d.reason), sb_str_c(m->reason));
    sb_ledger_copy(d.sensitivity, sizeof(d.sensitivity), sb_str_c(row->sensitivity));
    sb_ledger_copy(d.error_class, sizeof(d.error_class), sb_str_c(row->error_class));
    sb_ui_record(s->ui, &d);
}

/* ---------------------------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------------------------- */
/* With the dashboard off its URLs do not exist. */
static bool ui_enabled(struct sb__req *r)
{
    if (r->loop->server->ui != NULL)
        return true;
    sb__reply_no_route(r, SB__ROUTE_NO_PATH, 0);
    return false;
}

/* Whether an If-None-Match header names etag (or is "*"). Its list is read loosely: a quoted
 * ETag of ours cannot occur inside another one. */
static bool etag_matches(const char *header, const char *etag)
{
    if (header == NULL)
        return false;
    return strcmp(header, "*") == 0 || strstr(header, etag) != NULL;
}

void sb__ui_handle_asset(struct sb__req *r)
{
    const struct sb_ui_asset *a = sb_ui_asset_find(r->path);
    const char *inm;

    if (!ui_enabled(r))
        return;
    if (a == NULL) {
        sb__reply_no_route(r, SB__ROUTE_NO_PATH, 0);
        return;
    }
    add_headers(r, common_headers, SB_ARRAY_LEN(common_headers));
    add_headers(r, asset_headers, SB_ARRAY_LEN(asset_headers));
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "ETag", a->etag);
    inm = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "If-None-Match");
    if (etag_matches(inm, a->etag)) {
        sb__reply_typed(r, 304, a->content_type, SB_STR_NULL, NULL);
        return;
    }
    sb__reply_typed(r, 200, a->content_type, a->body, NULL);
}

void sb__ui_handle_summary(struct sb__req *r)
{
    struct sb_server *s = r->loop->server;
    size_t n = sb__server_n_models(s);
    struct sb_ui_model *models;
    struct sb_api_error err;
    struct sb_buf out;
    char listen[300];
    int rc = SB_ENOMEM;

    if (!ui_enabled(r))
        return;
    models = calloc(n ? n : 1, sizeof(*models));
    for (size_t i = 0; i < n && models != NULL; i++) {
        models[i].name = s->cfg->models[i].name;
        models[i].priced = sb__meter_kind_priced(s->cfg->models[i].backend);
    }
    snprintf(listen, sizeof(listen), "%s:%d", s->cfg->listen.host ? s->cfg->listen.host : "",
             s->port);
    const struct sb_ui_summary_params p = {
        .version = SB_VERSION,
        .instance = s->instance,
        .listen = listen,
        .now_ms = unix_ms_now(),
        .started_ms = s->started_ms,
        .models = models,
        .n_models = n,
    };
    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    if (models != NULL)
        rc = sb_ui_write_summary(s->ui, &p, &out);
    add_headers(r, common_headers, SB_ARRAY_LEN(common_headers));
    add_headers(r, summary_headers, SB_ARRAY_LEN(summary_headers));
    if (rc != 0) {
        sb_api_fail(&err, 500, "server_error", NULL, NULL,
                    "The server could not build the dashboard summary: %s.", sb_strerror(rc));
        sb__reply_error(r, &err, NULL);
    } else {
        sb__reply(r, 200, sb_buf_view(&out), NULL);
    }
    sb_buf_free(&out);
    free(models);
}
