/* What `switchboard serve` wraps its backends in: a breaker per model and a chain per model (the
 * model, then its fallbacks expanded depth-first), built from the config. */
#include "resil/resil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sb_resil {
    size_t n;
    struct sb_breaker **breakers; /* [n], one per model */
    struct sb_backend **chains;   /* [n], one per model */
};

static ptrdiff_t model_index(const struct sb_config *cfg, const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->n_models; i++)
        if (cfg->models[i].name != NULL && strcmp(cfg->models[i].name, name) == 0)
            return (ptrdiff_t)i;
    return -1;
}

/* Appends model v and then, depth-first, its fallbacks not seen yet to order[*k]. Returns 0, or
 * SB_EINVAL with a message when a fallback names no model (the config check reports it first). */
static int expand(const struct sb_config *cfg, size_t v, bool *seen, size_t *order, size_t *k,
                  char *err, size_t err_size)
{
    const struct sb_model_config *m = &cfg->models[v];
    seen[v] = true;
    order[(*k)++] = v;
    for (size_t j = 0; j < m->n_fallback; j++) {
        ptrdiff_t t = model_index(cfg, m->fallback[j]);
        if (t < 0) {
            snprintf(err, err_size, "model %s: fallback \"%s\" is not a model in this config",
                     m->name, m->fallback[j] != NULL ? m->fallback[j] : "");
            return SB_EINVAL;
        }
        if (seen[t])
            continue;
        int rc = expand(cfg, (size_t)t, seen, order, k, err, err_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One line per model with fallbacks: "model a: fallback chain a -> b -> c". */
static void log_chain(const struct sb_config *cfg, const size_t *order, size_t k)
{
    struct sb_buf line;
    sb_buf_init(&line, 4096);
    for (size_t j = 0; j < k; j++)
        sb_buf_printf(&line, "%s%s", j > 0 ? " -> " : "", cfg->models[order[j]].name);
    sb_log(SB_LOG_INFO, NULL, "model %s: fallback chain %s", cfg->models[order[0]].name,
           line.p != NULL ? line.p : "");
    sb_buf_free(&line);
}

int sb_resil_new(const struct sb_config *cfg, struct sb_backend *const *backends, size_t n,
                 struct sb_resil **out, char *err, size_t err_size)
{
    int rc = SB_ENOMEM;
    bool *seen = NULL;
    size_t *order = NULL;
    struct sb_chain_member *members = NULL;
    struct sb_resil *r = NULL;
    *out = NULL;
    err[0] = '\0';
    if (n != cfg->n_models) {
        snprintf(err, err_size, "%zu backends for %zu models", n, cfg->n_models);
        return SB_EINVAL;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL)
        goto fail;
    r->breakers = calloc(n ? n : 1, sizeof *r->breakers);
    r->chains = calloc(n ? n : 1, sizeof *r->chains);
    seen = calloc(n ? n : 1, sizeof *seen);
    order = calloc(n ? n : 1, sizeof *order);
    members = calloc(n ? n : 1, sizeof *members);
    if (r->breakers == NULL || r->chains == NULL || seen == NULL || order == NULL ||
        members == NULL)
        goto fail;
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        const struct sb_model_config *m = &cfg->models[i];
        struct sb_breaker_params p = sb_breaker_default_params();
        p.failures = m->breaker.failures;
        p.open_ms = m->breaker.open_ms;
        p.probes = m->breaker.probes;
        rc = sb_breaker_new(m->name, &p, &r->breakers[i]);
        if (rc != 0)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        memset(seen, 0, n * sizeof *seen);
        rc = expand(cfg, i, seen, order, &k, err, err_size);
        if (rc != 0)
            goto fail;
        for (size_t j = 0; j < k; j++) {
            const struct sb_model_config *mj = &cfg->models[order[j]];
            members[j] = (struct sb_chain_member){
                .backend = backends[order[j]],
                .breaker = r->breakers[order[j]],
                .retry = {mj->retries.max, mj->retries.base_ms, mj->retries.max_ms},
                .name = mj->name,
            };
        }
        if (k > 1)
            log_chain(cfg, order, k);
        rc = sb_chain_new(cfg->models[i].name, members, k, cfg->models[i].timeouts.total_ms,
                          &r->chains[i]);
        if (rc != 0) {
            snprintf(err, err_size, "model %s: the fallback chain could not be built: %s",
                     cfg->models[i].name, sb_strerror(rc));
            goto fail;
        }
    }
    free(seen);
    free(order);
    free(members);
    *out = r;
    return 0;
fail:
    if (err[0] == '\0')
        snprintf(err, err_size, "resilience setup: %s", sb_strerror(rc));
    free(seen);
    free(order);
    free(members);
    sb_resil_free(r);
    return rc;
}

struct sb_backend **sb_resil_backends(struct sb_resil *r)
{
    return r->chains;
}

struct sb_breaker *sb_resil_breaker(struct sb_resil *r, size_t i)
{
    return i < r->n ? r->breakers[i] : NULL;
}

void sb_resil_free(struct sb_resil *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; r->chains != NULL && i < r->n; i++)
        sb_backend_free(r->chains[i]);
    for (size_t i = 0; r->breakers != NULL && i < r->n; i++)
        sb_breaker_free(r->breakers[i]);
    free(r->chains);
    free(r->breakers);
    free(r);
}
