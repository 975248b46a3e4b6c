/* The routing decision: the config's policy rules compiled into plain data, each rule condition
 * one row of a predicate table, and the built-in hybrid policy for requests no rule claims. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route/internal.h"

/* ---------------------------------------------------------------------------------------------
 * The compiled form
 * ------------------------------------------------------------------------------------------- */
struct model {
    const struct sb_model_config *cfg;
    size_t name_len;
    struct sb_backend *backend; /* NULL for a router without backends */
    bool local;                 /* runs on this machine: the backend kind "local" */
    bool embeddings;            /* serves embeddings (and only those) */
    int64_t cfg_ctx;            /* the context the config promises (routers without backends) */
    uint32_t own[SB_ROUTE_MAX_CHAIN]; /* itself, then its fallbacks depth-first, each once */
    size_t n_own;
};

struct rule {
    const struct sb_policy_rule_config *cfg; /* id, key and team lists, deny */
    uint32_t conds;                          /* bit c: condition c of the table is written */
    uint32_t *models;                        /* requested aliases, as indexes (pool-owned) */
    size_t n_models;
    uint8_t sensitivities; /* bit per enum sb_sensitivity */
    uint64_t pii;          /* bit per PII kind */
    int64_t budget_below;  /* USD millionths */
    uint32_t route[SB_ROUTE_MAX_CHAIN];
    size_t n_route;
};

struct sb_router {
    const struct sb_config *cfg;
    struct model *models;
    size_t n_models;
    struct rule *rules;
    size_t n_rules;
    uint32_t *pool; /* every rule's model list */
    bool hybrid;    /* default: hybrid, else none */
    uint64_t high_kinds;
    const char *kind_names[SB_PRIVACY_MAX_KINDS];
    size_t n_kinds;
};

/* What the predicates see: the input and what the router derived from it once. */
struct eval {
    const struct sb_router *r;
    const struct sb_route_input *in;
    size_t model;                    /* index of the requested alias */
    enum sb_sensitivity sensitivity; /* effective */
    enum sb_sensitivity detected;
};

/* A bounded text being written into a fixed array: output past the end is dropped. */
struct text {
    char *p;
    size_t cap, len;
};

static void text_printf(struct text *t, const char *fmt, ...) SB_PRINTF(2, 3);

static void text_printf(struct text *t, const char *fmt, ...)
{
    if (t->len + 1 >= t->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = SB_MIN(t->len + (size_t)n, t->cap - 1);
}

static const char *model_name(const struct sb_router *r, uint32_t i)
{
    return r->models[i].cfg->name;
}

/* Writes "a, b, c" for a list of models. */
static void text_models(struct text *t, const struct sb_router *r, const uint32_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        text_printf(t, "%s%s", i > 0 ? ", " : "", model_name(r, list[i]));
}

/* ---------------------------------------------------------------------------------------------
 * Conditions: one row per `when:` key. written() reads the config once, at compile time; holds()
 * runs per request; describe() writes what matched, for the explanation of the rule that wins.
 * ------------------------------------------------------------------------------------------- */
static bool in_list(struct sb_str s, char *const *list, size_t n)
{
    for (size_t i = 0; i < n && s.len > 0; i++)
        if (sb_str_eq_c(s, list[i]))
            return true;
    return false;
}

static bool written_model(const struct sb_policy_when_config *w)
{
    return w->n_model > 0;
}
static bool written_key(const struct sb_policy_when_config *w)
{
    return w->n_key > 0;
}
static bool written_team(const struct sb_policy_when_config *w)
{
    return w->n_team > 0;
}
static bool written_sensitivity(const struct sb_policy_when_config *w)
{
    return w->n_sensitivity > 0;
}
static bool written_pii(const struct sb_policy_when_config *w)
{
    return w->n_pii > 0;
}
static bool written_min_prompt(const struct sb_policy_when_config *w)
{
    return w->has_min_prompt_tokens;
}
static bool written_max_prompt(const struct sb_policy_when_config *w)
{
    return w->has_max_prompt_tokens;
}
static bool written_min_max(const struct sb_policy_when_config *w)
{
    return w->has_min_max_tokens;
}
static bool written_tools(const struct sb_policy_when_config *w)
{
    return w->has_tools;
}
static bool written_budget(const struct sb_policy_when_config *w)
{
    return w->budget_below_usd != NULL;
}

static bool holds_model(const struct rule *ru, const struct eval *e)
{
    for (size_t i = 0; i < ru->n_models; i++)
        if (ru->models[i] == e->model)
            return true;
    return false;
}
static bool holds_key(const struct rule *ru, const struct eval *e)
{
    return in_list(e->in->key, ru->cfg->when.key, ru->cfg->when.n_key);
}
static bool holds_team(const struct rule *ru, const struct eval *e)
{
    return in_list(e->in->team, ru->cfg->when.team, ru->cfg->when.n_team);
}
static bool holds_sensitivity(const struct rule *ru, const struct eval *e)
{
    return (ru->sensitivities >> e->sensitivity) & 1u;
}
static bool holds_pii(const struct rule *ru, const struct eval *e)
{
    return e->in->pii != NULL && (e->in->pii->kinds & ru->pii) != 0;
}
static bool holds_min_prompt(const struct rule *ru, const struct eval *e)
{
    return e->in->prompt_tokens >= ru->cfg->when.min_prompt_tokens;
}
static bool holds_max_prompt(const struct rule *ru, const struct eval *e)
{
    return e->in->prompt_tokens <= ru->cfg->when.max_prompt_tokens;
}
/* A request without max_tokens may generate until the context is full: it asks for the most. */
static bool holds_min_max(const struct rule *ru, const struct eval *e)
{
    return e->in->max_tokens <= 0 || e->in->max_tokens >= ru->cfg->when.min_max_tokens;
}
static bool holds_tools(const struct rule *ru, const struct eval *e)
{
    return e->in->tools == ru->cfg->when.tools;
}
/* An unknown budget is not "below": budget rules apply only where a budget is kept. */
static bool holds_budget(const struct rule *ru, const struct eval *e)
{
    return e->in->has_budget && e->in->budget_left_micros < ru->budget_below;
}

static const char *approx(const struct eval *e)
{
    return e->in->prompt_tokens_exact ? "" : "~";
}

static void describe_model(const struct rule *ru, const struct eval *e, struct text *t)
{
    SB_UNUSED(ru);
    text_printf(t, "model %s", model_name(e->r, (uint32_t)e->model));
}
static void describe_key(const struct rule *ru, const struct eval *e, struct text *t)
{
    SB_UNUSED(ru);
    text_printf(t, "key %.*s", (int)e->in->key.len, e->in->key.p);
}
static void describe_team(const struct rule *ru, const struct eval *e, struct text *t)
{
    SB_UNUSED(ru);
    text_printf(t, "team %.*s", (int)e->in->team.len, e->in->team.p);
}
static void describe_source(const struct eval *e, struct text *t);
static void describe_sensitivity(const struct rule *ru, const struct eval *e, struct text *t)
{
    SB_UNUSED(ru);
    text_printf(t, "sensitivity %s", sb_route_sensitivity_name(e->sensitivity));
    describe_source(e, t);
}
static void describe_pii(const struct rule *ru, const struct eval *e, struct text *t)
{
    uint64_t hit = e->in->pii->kinds & ru->pii;
    text_printf(t, "pii");
    for (uint32_t k = 0; hit != 0 && k < SB_PRIVACY_MAX_KINDS; k++, hit >>= 1)
        if (hit & 1u)
            text_printf(t, " %s", sb__route_kind_name(e->r, k));
}
static void describe_min_prompt(const struct rule *ru, const struct eval *e, struct text *t)
{
    text_printf(t, "%s%lld prompt tokens >= %lld", approx(e), (long long)e->in->prompt_tokens,
                (long long)ru->cfg->when.min_prompt_tokens);
}
static void describe_max_prompt(const struct rule *ru, const struct eval *e, struct text *t)
{
    text_printf(t, "%s%lld prompt tokens <= %lld", approx(e), (long long)e->in->prompt_tokens,
                (long long)ru->cfg->when.max_prompt_tokens);
}
static void describe_min_max(const struct rule *ru, const struct eval *e, struct text *t)
{
    if (e->in->max_tokens <= 0)
        text_printf(t, "max_tokens unset (unbounded) >= %lld",
                    (long long)ru->cfg->when.min_max_tokens);
    else
        text_printf(t, "max_tokens %lld >= %lld", (long long)e->in->max_tokens,
                    (long long)ru->cfg->when.min_max_tokens);
}
static void describe_tools(const struct rule *ru, const struct eval *e, struct text *t)
{
    SB_UNUSED(ru);
    text_printf(t, "%s", e->in->tools ? "tools" : "no tools");
}
static void describe_budget(const struct rule *ru, const struct eval *e, struct text *t)
{
    /* Overspent budgets are negative; the magnitude is written apart from the sign. */
    int64_t v = e->in->budget_left_micros;
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    text_printf(t, "budget left %s%llu.%06llu USD < %s", v < 0 ? "-" : "",
                (unsigned long long)(mag / 1000000), (unsigned long long)(mag % 1000000),
                ru->cfg->when.budget_below_usd);
}

static const struct cond {
    const char *key; /* the `when:` key */
    bool (*written)(const struct sb_policy_when_config *w);
    bool (*holds)(const struct rule *ru, const struct eval *e);
    void (*describe)(const struct rule *ru, const struct eval *e, struct text *t);
} conds[] = {
    {"model", written_model, holds_model, describe_model}, /* requested alias */
    {"key", written_key, holds_key, describe_key},         /* API key name */
    {"team", written_team, holds_team, describe_team},     /* the key's team */
    {"sensitivity", written_sensitivity, holds_sensitivity, describe_sensitivity}, /* effective */
    {"pii", written_pii, holds_pii, describe_pii}, /* any kind detected */
    {"min_prompt_tokens", written_min_prompt, holds_min_prompt, describe_min_prompt},
    {"max_prompt_tokens", written_max_prompt, holds_max_prompt, describe_max_prompt},
    {"min_max_tokens", written_min_max, holds_min_max, describe_min_max},
    {"tools", written_tools, holds_tools, describe_tools},               /* has tools, or not */
    {"budget_below_usd", written_budget, holds_budget, describe_budget}, /* budget left below */
};

_Static_assert(SB_ARRAY_LEN(conds) <= 32, "a rule's conditions are bits of a uint32_t");

/* Where the effective sensitivity came from: " (label)", " (detected: card)", " (scan failed)". */
static void describe_source(const struct eval *e, struct text *t)
{
    if (e->in->scan_failed && e->sensitivity == SB_SENSITIVITY_HIGH) {
        text_printf(t, " (PII scan failed)");
        return;
    }
    if (e->in->label >= e->detected && e->in->label != SB_SENSITIVITY_UNSET) {
        text_printf(t, " (label)");
        return;
    }
    if (e->detected <= SB_SENSITIVITY_LOW || e->in->pii == NULL)
        return;
    /* The first kind found at the detected level names it. */
    uint64_t kinds = e->in->pii->kinds;
    for (uint32_t k = 0; kinds != 0 && k < SB_PRIVACY_MAX_KINDS; k++)
        if (((kinds >> k) & 1u) && sb__route_kind_sensitivity(k) == e->detected) {
            text_printf(t, " (detected: %s)", sb__route_kind_name(e->r, k));
            return;
        }
}

/* ---------------------------------------------------------------------------------------------
 * Building the router
 * ------------------------------------------------------------------------------------------- */
static ptrdiff_t find_model(const struct sb_router *r, struct sb_str name)
{
    for (size_t i = 0; i < r->n_models; i++)
        if (r->models[i].name_len == name.len &&
            memcmp(r->models[i].cfg->name, name.p, name.len) == 0)
            return (ptrdiff_t)i;
    return -1;
}

ptrdiff_t sb_route_find_model(const struct sb_router *r, struct sb_str name)
{
    return name.len > 0 ? find_model(r, name) : -1;
}

bool sb_route_is_local(const struct sb_router *r, size_t i)
{
    return i < r->n_models && r->models[i].local;
}

/* Appends model i and its fallbacks, depth-first, each model once (as resil builds chains). */
static void expand_own(const struct sb_router *r, size_t i, bool *seen, struct model *m)
{
    if (seen[i] || m->n_own >= SB_ROUTE_MAX_CHAIN)
        return;
    seen[i] = true;
    m->own[m->n_own++] = (uint32_t)i;
    const struct sb_model_config *c = r->models[i].cfg;
    for (size_t j = 0; j < c->n_fallback; j++) {
        ptrdiff_t f = find_model(r, sb_str_c(c->fallback[j]));
        if (f >= 0)
            expand_own(r, (size_t)f, seen, m);
    }
}

/* Resolves a PII kind name to its number: built-in, "term", or a custom pattern. -1 if unknown. */
static int kind_of(const struct sb_config *cfg, const char *name)
{
    int k = sb_privacy_detector_find(name);
    if (k >= 0)
        return k;
    if (strcmp(name, "term") == 0)
        return SB_PII_TERM;
    for (size_t i = 0; i < cfg->privacy.n_custom_patterns; i++)
        if (cfg->privacy.custom_patterns[i].name != NULL &&
            strcmp(cfg->privacy.custom_patterns[i].name, name) == 0 &&
            SB_PII_CUSTOM + i < SB_PRIVACY_MAX_KINDS)
            return (int)(SB_PII_CUSTOM + i);
    return -1;
}

/* Compiles one rule; *pool_used advances over the model indexes it takes. */
static int compile_rule(struct sb_router *r, const struct sb_policy_rule_config *rc,
                        struct rule *ru, size_t *pool_used, char *err, size_t err_size)
{
    const struct sb_policy_when_config *w = &rc->when;
    ru->cfg = rc;
    for (size_t c = 0; c < SB_ARRAY_LEN(conds); c++)
        if (conds[c].written(w))
            ru->conds |= 1u << c;
    ru->models = r->pool + *pool_used;
    for (size_t i = 0; i < w->n_model; i++) {
        ptrdiff_t m = find_model(r, sb_str_c(w->model[i]));
        if (m < 0) {
            snprintf(err, err_size, "policy rule %s: unknown model \"%s\" in when.model", rc->id,
                     w->model[i]);
            return SB_EINVAL;
        }
        ru->models[ru->n_models++] = (uint32_t)m;
    }
    *pool_used += ru->n_models;
    for (size_t i = 0; i < w->n_sensitivity; i++) {
        enum sb_sensitivity s;
        if (sb_route_sensitivity_parse(sb_str_c(w->sensitivity[i]), &s) != 0) {
            snprintf(err, err_size, "policy rule %s: unknown sensitivity \"%s\"", rc->id,
                     w->sensitivity[i]);
            return SB_EINVAL;
        }
        ru->sensitivities |= (uint8_t)(1u << s);
    }
    for (size_t i = 0; i < w->n_pii; i++) {
        int k = kind_of(r->cfg, w->pii[i]);
        if (k < 0) {
            snprintf(err, err_size, "policy rule %s: unknown PII kind \"%s\"", rc->id, w->pii[i]);
            return SB_EINVAL;
        }
        ru->pii |= (uint64_t)1 << k;
    }
    if (w->budget_below_usd != NULL &&
        sb_config_parse_micros(w->budget_below_usd, INT64_MAX, &ru->budget_below) != 0) {
        snprintf(err, err_size, "policy rule %s: budget_below_usd \"%s\" is not a decimal", rc->id,
                 w->budget_below_usd);
        return SB_EINVAL;
    }
    if (rc->action.n_route > SB_ROUTE_MAX_CHAIN) {
        snprintf(err, err_size, "policy rule %s: more than %d models in action.route", rc->id,
                 SB_ROUTE_MAX_CHAIN);
        return SB_EINVAL;
    }
    for (size_t i = 0; i < rc->action.n_route; i++) {
        ptrdiff_t m = find_model(r, sb_str_c(rc->action.route[i]));
        if (m < 0) {
            snprintf(err, err_size, "policy rule %s: unknown model \"%s\" in action.route", rc->id,
                     rc->action.route[i]);
            return SB_EINVAL;
        }
        ru->route[ru->n_route++] = (uint32_t)m;
    }
    return 0;
}

int sb_router_new(const struct sb_config *cfg, struct sb_backend *const *backends,
                  size_t n_backends, struct sb_router **out, char *err, size_t err_size)
{
    int rc = SB_ENOMEM;
    bool *seen = NULL;
    struct sb_router *r = NULL;
    *out = NULL;
    err[0] = '\0';
    if (backends != NULL && n_backends != cfg->n_models) {
        snprintf(err, err_size, "%zu backends for %zu models", n_backends, cfg->n_models);
        return SB_EINVAL;
    }
    size_t pool_size = 0;
    for (size_t i = 0; i < cfg->policy.n_rules; i++)
        pool_size += cfg->policy.rules[i].when.n_model;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        goto fail;
    r->cfg = cfg;
    r->hybrid =
        cfg->policy.default_policy == NULL || strcmp(cfg->policy.default_policy, "hybrid") == 0;
    r->high_kinds = sb__route_high_kinds();
    r->n_models = cfg->n_models;
    r->models = calloc(SB_MAX(cfg->n_models, (size_t)1), sizeof *r->models);
    r->rules = calloc(SB_MAX(cfg->policy.n_rules, (size_t)1), sizeof *r->rules);
    r->pool = calloc(SB_MAX(pool_size, (size_t)1), sizeof *r->pool);
    seen = calloc(SB_MAX(cfg->n_models, (size_t)1), sizeof *seen);
    if (r->models == NULL || r->rules == NULL || r->pool == NULL || seen == NULL)
        goto fail;

    for (size_t i = 0; i < cfg->n_models; i++) {
        struct model *m = &r->models[i];
        const struct sb_model_config *mc = &cfg->models[i];
        m->cfg = mc;
        m->name_len = mc->name != NULL ? strlen(mc->name) : 0;
        m->embeddings = mc->embeddings;
        m->backend = backends != NULL ? backends[i] : NULL;
        if (m->backend != NULL) {
            struct sb_backend_info info;
            sb_backend_info(m->backend, &info);
            m->local = info.kind != NULL && strcmp(info.kind, "local") == 0;
        } else {
            m->local = mc->backend != NULL && strcmp(mc->backend, "local") == 0;
        }
        m->cfg_ctx = !m->local       ? 0
                     : mc->n_ctx > 0 ? (int64_t)mc->n_ctx
                                     : (int64_t)SB__ROUTE_LOCAL_CTX_DEFAULT;
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        memset(seen, 0, cfg->n_models * sizeof *seen);
        expand_own(r, i, seen, &r->models[i]);
    }

    size_t nb = 0;
    const char *const *builtin = sb_privacy_detector_names(&nb);
    for (size_t k = 0; k < nb && r->n_kinds < SB_PRIVACY_MAX_KINDS; k++)
        r->kind_names[r->n_kinds++] = builtin[k];
    r->n_kinds = SB_PII_TERM;
    r->kind_names[r->n_kinds++] = "term";
    for (size_t i = 0; i < cfg->privacy.n_custom_patterns && r->n_kinds < SB_PRIVACY_MAX_KINDS; i++)
        r->kind_names[r->n_kinds++] = cfg->privacy.custom_patterns[i].name;

    size_t pool_used = 0;
    for (size_t i = 0; i < cfg->policy.n_rules; i++) {
        rc = compile_rule(r, &cfg->policy.rules[i], &r->rules[i], &pool_used, err, err_size);
        if (rc != 0)
            goto fail;
        r->n_rules++;
    }
    free(seen);
    *out = r;
    return 0;

fail:
    if (err[0] == '\0')
        snprintf(err, err_size, "router setup: %s", sb_strerror(rc));
    free(seen);
    sb_router_free(r);
    return rc;
}

void sb_router_free(struct sb_router *r)
{
    if (r == NULL)
        return;
    free(r->models);
    free(r->rules);
    free(r->pool);
    free(r);
}

/* ---------------------------------------------------------------------------------------------
 * Accessors for the module's other files
 * ------------------------------------------------------------------------------------------- */
struct sb_backend *sb__route_backend(const struct sb_router *r, size_t i)
{
    return i < r->n_models ? r->models[i].backend : NULL;
}

int64_t sb__route_model_ctx(const struct sb_router *r, size_t i)
{
    const struct model *m = &r->models[i];
    if (m->backend == NULL)
        return m->cfg_ctx;
    struct sb_backend_info info;
    sb_backend_info(m->backend, &info);
    return info.n_ctx;
}

const struct sb_config *sb__route_config(const struct sb_router *r)
{
    return r->cfg;
}

const char *sb__route_kind_name(const struct sb_router *r, uint32_t kind)
{
    return kind < r->n_kinds && r->kind_names[kind] != NULL ? r->kind_names[kind] : "?";
}

/* ---------------------------------------------------------------------------------------------
 * The hybrid policy (docs/routing.md has it as a table)
 * ------------------------------------------------------------------------------------------- */
/* The model may serve a request of this kind: embedding models serve embeddings only. */
static bool serves(const struct model *m, enum sb_request_kind kind)
{
    return m->embeddings == (kind == SB_REQ_EMBED);
}

/* The prompt fits a context window: its BOS and one generated token included, as the chain and
 * the local engine count. Unknown windows fit; embeddings are checked per input by the backend. */
static bool fits(int64_t ctx, const struct sb_route_input *in)
{
    return ctx <= 0 || in->kind == SB_REQ_EMBED || in->prompt_tokens + 2 <= ctx;
}

/* The candidates on each side, in the order the hybrid policy would try them. */
struct sides {
    uint32_t local[SB_ROUTE_MAX_CHAIN]; /* local models whose context fits the prompt */
    size_t n_local;
    uint32_t cloud[SB_ROUTE_MAX_CHAIN];
    size_t n_cloud;
    bool any_local;      /* some local model could serve the kind, fitting or not */
    int64_t largest_ctx; /* the largest context among local models that did not fit */
};

static void add_local(const struct sb_router *r, const struct eval *e, struct sides *s, uint32_t i)
{
    s->any_local = true;
    int64_t ctx = sb__route_model_ctx(r, i);
    if (fits(ctx, e->in) && s->n_local < SB_ROUTE_MAX_CHAIN)
        s->local[s->n_local++] = i;
    else if (!fits(ctx, e->in))
        s->largest_ctx = SB_MAX(s->largest_ctx, ctx);
}

/* The requested model's configured chain, split by side; for a generation, a side the chain lacks
 * gets the first model of the file that serves the kind (and, for local, fits). */
static void gather(const struct sb_router *r, const struct eval *e, struct sides *s)
{
    const struct model *a = &r->models[e->model];
    bool own_local = false, own_cloud = false;
    memset(s, 0, sizeof *s);
    for (size_t j = 0; j < a->n_own; j++) {
        const struct model *m = &r->models[a->own[j]];
        /* The alias itself always stands; its fallbacks only when they serve the kind. */
        if (j > 0 && !serves(m, e->in->kind))
            continue;
        if (m->local) {
            own_local = true;
            add_local(r, e, s, a->own[j]);
        } else {
            own_cloud = true;
            s->cloud[s->n_cloud++] = a->own[j];
        }
    }
    /* Vectors from different models are not comparable: embeddings stay on their own chain. */
    if (e->in->kind == SB_REQ_EMBED)
        return;
    for (size_t i = 0; i < r->n_models && !own_local && s->n_local == 0; i++)
        if (r->models[i].local && serves(&r->models[i], e->in->kind))
            add_local(r, e, s, (uint32_t)i);
    for (size_t i = 0; i < r->n_models && !own_cloud && s->n_cloud == 0; i++)
        if (!r->models[i].local && serves(&r->models[i], e->in->kind))
            s->cloud[s->n_cloud++] = (uint32_t)i;
}

static void set_chain(struct sb_route_decision *out, const uint32_t *a, size_t na,
                      const uint32_t *b, size_t nb)
{
    for (size_t i = 0; i < na && out->n_chain < SB_ROUTE_MAX_CHAIN; i++)
        out->chain[out->n_chain++] = a[i];
    for (size_t i = 0; i < nb && out->n_chain < SB_ROUTE_MAX_CHAIN; i++)
        out->chain[out->n_chain++] = b[i];
}

/* The reasons a hybrid decision denies. */
static const char deny_context[] =
    "prompt exceeds the local context and the data may not leave the machine";
static const char deny_no_local[] =
    "no local model can serve this request and the data may not leave the machine";

static int decide_hybrid(const struct sb_router *r, const struct eval *e,
                         struct sb_route_decision *out, struct text *t)
{
    struct sides s;
    gather(r, e, &s);
    const struct model *a = &r->models[e->model];
    const char *sens = sb_route_sensitivity_name(SB_MAX(e->sensitivity, SB_SENSITIVITY_LOW));
    bool too_long = s.n_local == 0 && s.any_local;
    text_printf(t, "default hybrid: ");
    if (e->sensitivity == SB_SENSITIVITY_HIGH) {
        text_printf(t, "sensitivity high");
        describe_source(e, t);
        if (s.n_local == 0) {
            out->deny = true;
            out->deny_reason = too_long ? deny_context : deny_no_local;
            if (too_long)
                text_printf(t, ", %s%lld prompt tokens exceed the local context (%lld) -> deny",
                            approx(e), (long long)e->in->prompt_tokens, (long long)s.largest_ctx);
            else
                text_printf(t, ", no local model serves this request -> deny");
            return SB_EDENIED;
        }
        set_chain(out, s.local, s.n_local, NULL, 0);
        text_printf(t, " -> local only");
        return 0;
    }
    if (s.n_local == 0) {
        if (s.n_cloud == 0) {
            /* Nothing fits: the configured chain answers with its context error. */
            set_chain(out, a->own, a->n_own, NULL, 0);
            text_printf(t,
                        "%s%lld prompt tokens exceed the local context (%lld) and no cloud "
                        "model is configured -> the configured chain",
                        approx(e), (long long)e->in->prompt_tokens, (long long)s.largest_ctx);
            return 0;
        }
        set_chain(out, s.cloud, s.n_cloud, NULL, 0);
        if (too_long) {
            out->pseudonymize = true;
            text_printf(t,
                        "%s%lld prompt tokens exceed the local context (%lld) -> cloud, "
                        "pseudonymized",
                        approx(e), (long long)e->in->prompt_tokens, (long long)s.largest_ctx);
        } else {
            out->pseudonymize = e->sensitivity == SB_SENSITIVITY_MEDIUM;
            text_printf(t, "sensitivity %s", sens);
            describe_source(e, t);
            text_printf(t, ", no local model serves this request -> cloud%s",
                        out->pseudonymize ? ", pseudonymized" : "");
        }
        return 0;
    }
    out->pseudonymize = e->sensitivity == SB_SENSITIVITY_MEDIUM && s.n_cloud > 0;
    if (a->local) {
        set_chain(out, s.local, s.n_local, s.cloud, s.n_cloud);
        text_printf(t, "sensitivity %s", sens);
        describe_source(e, t);
        text_printf(t, " -> local first%s%s",
                    s.n_cloud > 0 ? ", cloud fallback" : " (no cloud model)",
                    out->pseudonymize ? " pseudonymized" : "");
    } else {
        set_chain(out, s.cloud, s.n_cloud, s.local, s.n_local);
        text_printf(t, "cloud alias, sensitivity %s", sens);
        describe_source(e, t);
        text_printf(t, " -> cloud first%s, local fallback",
                    out->pseudonymize ? " pseudonymized" : "");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Deciding
 * ------------------------------------------------------------------------------------------- */
ptrdiff_t sb__route_tokenizer_model(const struct sb_router *r, size_t m, enum sb_request_kind kind)
{
    const struct model *a = &r->models[m];
    for (size_t j = 0; j < a->n_own; j++)
        if (r->models[a->own[j]].local)
            return a->own[j];
    for (size_t i = 0; i < r->n_models; i++)
        if (r->models[i].local && serves(&r->models[i], kind))
            return (ptrdiff_t)i;
    return -1;
}

/* Applies a matching rule's action. */
static int apply_rule(const struct sb_router *r, const struct rule *ru, const struct eval *e,
                      struct sb_route_decision *out, struct text *t)
{
    const struct sb_policy_action_config *act = &ru->cfg->action;
    text_printf(t, "rule %s: ", ru->cfg->id);
    if (ru->conds == 0)
        text_printf(t, "every request");
    uint32_t bits = ru->conds;
    bool first = true;
    for (size_t c = 0; bits != 0; c++, bits >>= 1) {
        if (!(bits & 1u))
            continue;
        text_printf(t, "%s", first ? "" : ", ");
        conds[c].describe(ru, e, t);
        first = false;
    }
    if (act->deny != NULL) {
        out->deny = true;
        out->deny_reason = act->deny;
        text_printf(t, " -> deny");
        return SB_EDENIED;
    }
    out->pseudonymize = act->pseudonymize;
    if (ru->n_route > 0) {
        set_chain(out, ru->route, ru->n_route, NULL, 0);
        text_printf(t, " -> ");
        text_models(t, r, ru->route, ru->n_route);
    } else {
        const struct model *a = &r->models[e->model];
        set_chain(out, a->own, a->n_own, NULL, 0);
        text_printf(t, " -> the configured chain");
    }
    if (out->pseudonymize)
        text_printf(t, ", pseudonymized");
    return 0;
}

int sb_route_decide(const struct sb_router *r, const struct sb_route_input *in,
                    struct sb_route_decision *out)
{
    out->n_chain = 0;
    out->pseudonymize = false;
    out->deny = false;
    out->deny_reason = NULL;
    out->rule = "default";
    out->reason[0] = '\0';
    struct text t = {out->reason, sizeof out->reason, 0};

    ptrdiff_t m = sb_route_find_model(r, in->model);
    if (m < 0) {
        out->sensitivity = out->detected = SB_SENSITIVITY_UNSET;
        text_printf(&t, "no model is named \"%.*s\"", (int)SB_MIN(in->model.len, (size_t)64),
                    in->model.p != NULL ? in->model.p : "");
        return SB_ENOTFOUND;
    }
    struct eval e = {.r = r, .in = in, .model = (size_t)m};
    /* A scan that failed found out nothing: the request is treated as the most sensitive. */
    e.detected = in->scan_failed                          ? SB_SENSITIVITY_HIGH
                 : in->pii == NULL || in->pii->kinds == 0 ? SB_SENSITIVITY_LOW
                 : (in->pii->kinds & r->high_kinds) != 0  ? SB_SENSITIVITY_HIGH
                                                          : SB_SENSITIVITY_MEDIUM;
    e.sensitivity = SB_MAX(SB_MAX(in->label, e.detected), SB_SENSITIVITY_LOW);
    out->sensitivity = e.sensitivity;
    out->detected = e.detected;

    for (size_t i = 0; i < r->n_rules; i++) {
        const struct rule *ru = &r->rules[i];
        bool match = true;
        uint32_t bits = ru->conds;
        for (size_t c = 0; bits != 0 && match; c++, bits >>= 1)
            if (bits & 1u)
                match = conds[c].holds(ru, &e);
        if (match) {
            out->rule = ru->cfg->id;
            return apply_rule(r, ru, &e, out, &t);
        }
    }
    if (r->hybrid)
        return decide_hybrid(r, &e, out, &t);
    const struct model *a = &r->models[m];
    set_chain(out, a->own, a->n_own, NULL, 0);
    text_printf(&t, "default none: no rule matched -> the configured chain of %s", a->cfg->name);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * For the HTTP layer
 * ------------------------------------------------------------------------------------------- */
int sb_route_chain_members(const struct sb_router *r, const struct sb_route_decision *d,
                           struct sb_backend *const *backends, struct sb_resil *resil,
                           struct sb_chain_member *members)
{
    for (size_t j = 0; j < d->n_chain; j++) {
        uint32_t i = d->chain[j];
        struct sb_backend *b = backends != NULL ? backends[i] : r->models[i].backend;
        if (b == NULL)
            return SB_EINVAL;
        const struct sb_model_config *mc = r->models[i].cfg;
        members[j] = (struct sb_chain_member){
            .backend = b,
            .breaker = resil != NULL ? sb_resil_breaker(resil, i) : NULL,
            .retry = {mc->retries.max, mc->retries.base_ms, mc->retries.max_ms},
            .name = mc->name,
        };
    }
    return (int)d->n_chain;
}

/* Appends s for a quoted header value: printable ASCII, with '"' and '\' escaped; anything else
 * (control bytes, UTF-8) becomes '?', so the header stays one valid line. */
static int append_header_text(struct sb_buf *out, struct sb_str s)
{
    int rc = 0;
    for (size_t i = 0; i < s.len && rc == 0; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\')
            rc = sb_buf_append_char(out, '\\');
        if (rc == 0)
            rc = sb_buf_append_char(out, c >= 0x20 && c < 0x7f ? (char)c : '?');
    }
    return rc;
}

int sb_route_write_header(const struct sb_route_decision *d, struct sb_str served,
                          struct sb_buf *out)
{
    int rc = sb_buf_append_c(out, "backend=");
    if (rc == 0)
        rc = append_header_text(out, served.len > 0 ? served : SB_STR_LIT("none"));
    if (rc == 0)
        rc = sb_buf_append_c(out, "; rule=");
    if (rc == 0)
        rc = append_header_text(out, sb_str_c(d->rule));
    if (rc == 0)
        rc = sb_buf_append_c(out, "; reason=\"");
    if (rc == 0)
        rc = append_header_text(out, sb_str_c(d->reason));
    if (rc == 0)
        rc = sb_buf_append_char(out, '"');
    return rc;
}
