/* Embeddings on a local model configured with `embeddings: true`: each input of a request is one
 * sequence, pooled as the model says (mean when it says nothing), normalized to unit length as
 * OpenAI's are, and sent as one EMBEDDING event; USAGE and FINISH follow the last one.
 *
 * dimensions. A request may ask for fewer components than the model's width: it gets the first N,
 * scaled back to unit length (the "Matryoshka" shortening OpenAI's text-embedding-3 models
 * document). That is only meaningful for a model trained that way; on another it still gives a
 * unit vector, with less of what the full one encodes. More than the width is refused (400).
 *
 * Batching. Each step packs whole inputs, oldest request first and in input order, into one
 * batch of at most n_batch tokens and n_slots sequences, clears the cache, decodes, and reads each
 * sequence's pooled vector. An input never spans two steps: llama.cpp pools per ubatch, so a split
 * input would be pooled from its last part only. Inputs are independent (their own sequence and
 * positions from 0), so an input's vector does not depend on what it was batched with. Worker
 * thread only. */
#include "backend/local_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One request in progress. */
struct embed_job {
    struct lcall *lc;  /* NULL when the entry is free */
    llama_token *toks; /* every input's tokens, one after another */
    int32_t *off;      /* [n_inputs + 1]: input i is toks[off[i], off[i + 1]) */
    size_t n_inputs;
    size_t next;      /* the first input not yet in a batch */
    size_t done;      /* inputs whose vector was sent */
    int64_t n_tokens; /* all inputs' tokens: the usage */
    uint64_t ticket;  /* admission order */
};

/* Which input a sequence of the batch being decoded holds. */
struct lane {
    struct embed_job *job;
    size_t input;
};

struct local_embed {
    struct embed_job *jobs; /* [n_slots] */
    struct lane *lanes;     /* [n_slots] */
    float *vec;             /* [n_embd]: one normalized vector */
    int32_t n_embd;
    uint64_t next_ticket;
};

enum llama_pooling_type sb__local_embed_pooling(const struct llama_model *model)
{
    char arch[64];
    char key[96];
    char val[16];
    if (llama_model_meta_val_str(model, "general.architecture", arch, sizeof arch) < 0) {
        return LLAMA_POOLING_TYPE_MEAN;
    }
    snprintf(key, sizeof key, "%s.pooling_type", arch);
    if (llama_model_meta_val_str(model, key, val, sizeof val) < 0) {
        return LLAMA_POOLING_TYPE_MEAN;
    }
    char *end = NULL;
    long v = strtol(val, &end, 10);
    /* A generative model says NONE (per-token output): an embedding of it is the mean. */
    if (end == val || v <= LLAMA_POOLING_TYPE_NONE || v > LLAMA_POOLING_TYPE_RANK) {
        return LLAMA_POOLING_TYPE_MEAN;
    }
    return (enum llama_pooling_type)v;
}

int sb__local_embed_new(struct local_engine *e, char *err, size_t err_size)
{
    if (llama_pooling_type(e->ctx) == LLAMA_POOLING_TYPE_RANK) {
        snprintf(err, err_size,
                 "model %s is a reranker (its GGUF says pooling_type rank); it cannot serve "
                 "embeddings",
                 e->b->name);
        return SB_EINVAL;
    }
    struct local_embed *m = calloc(1, sizeof *m);
    if (!m) {
        return SB_ENOMEM;
    }
    e->embed = m;
    m->n_embd = llama_model_n_embd_out(e->model);
    m->jobs = calloc((size_t)e->n_slots, sizeof *m->jobs);
    m->lanes = calloc((size_t)e->n_slots, sizeof *m->lanes);
    m->vec = malloc((size_t)SB_MAX(m->n_embd, 1) * sizeof *m->vec);
    if (!m->jobs || !m->lanes || !m->vec) {
        return SB_ENOMEM; /* the engine's free releases what was made */
    }
    return SB_OK;
}

void sb__local_embed_free(struct local_embed *m)
{
    if (!m) {
        return;
    }
    free(m->jobs);
    free(m->lanes);
    free(m->vec);
    free(m);
}

size_t sb__local_embed_room(const struct local_engine *e)
{
    size_t room = 0;
    for (int32_t i = 0; i < e->n_slots; i++) {
        room += e->embed->jobs[i].lc == NULL;
    }
    return room;
}

/* Frees the job's tokens and hands its call back; the entry becomes free. */
static void job_release(struct local_engine *e, struct embed_job *j)
{
    sb__local_busy_add(e->b, -1);
    sb__lc_release(j->lc);
    free(j->toks);
    free(j->off);
    *j = (struct embed_job){0};
}

static void job_fail(struct local_engine *e, struct embed_job *j, int code, int status,
                     const char *msg)
{
    sb__lc_post_error(j->lc, code, status, 0, msg);
    job_release(e, j);
}

/* Tokenizes every input into j (BOS/EOS or CLS/SEP as the vocabulary adds them) and checks each
 * against the window. Returns 0, or an SB_E* code with a message for the client in err. */
static int job_tokenize(struct local_engine *e, struct embed_job *j, const struct sb_request *req,
                        char *err, size_t err_size)
{
    size_t cap = 0;
    j->off = calloc(req->n_inputs + 1, sizeof *j->off);
    if (!j->off) {
        snprintf(err, err_size, "the local model ran out of memory");
        return SB_ENOMEM;
    }
    for (size_t i = 0; i < req->n_inputs; i++) {
        llama_token *toks = NULL;
        int32_t n = 0;
        int rc = sb__local_tokenize(e->b->vocab, req->inputs[i], true, &toks, &n);
        if (rc == SB_OK && n > e->n_ctx_slot) {
            snprintf(err, err_size,
                     "This model's maximum context length is %d tokens, but input[%zu] is %d "
                     "tokens. Shorten the input.",
                     e->n_ctx_slot, i, n);
            rc = SB_ECONTEXT;
        } else if (rc == SB_OK && n == 0) {
            snprintf(err, err_size, "input[%zu] is empty", i);
            rc = SB_EINVAL;
        } else if (rc != SB_OK) {
            snprintf(err, err_size, "input[%zu] could not be tokenized: %s", i, sb_strerror(rc));
        }
        size_t need = (size_t)j->off[i] + (size_t)n;
        if (rc == SB_OK && need > INT32_MAX) {
            snprintf(err, err_size, "the inputs are too large; send fewer at a time");
            rc = SB_ETOOBIG;
        } else if (rc == SB_OK && need > cap) {
            size_t grown_cap = SB_MIN(SB_MAX(need, cap * 2), (size_t)INT32_MAX);
            llama_token *grown = realloc(j->toks, grown_cap * sizeof *grown);
            if (!grown) {
                snprintf(err, err_size, "the local model ran out of memory");
                rc = SB_ENOMEM;
            } else {
                j->toks = grown;
                cap = grown_cap;
            }
        }
        if (rc == SB_OK) {
            memcpy(j->toks + j->off[i], toks, (size_t)n * sizeof *toks);
            j->off[i + 1] = (int32_t)need;
        }
        free(toks);
        if (rc != SB_OK) {
            return rc;
        }
    }
    j->n_inputs = req->n_inputs;
    j->n_tokens = j->off[req->n_inputs];
    return SB_OK;
}

void sb__local_embed_admit(struct local_engine *e, struct lcall *lc)
{
    struct local_embed *m = e->embed;
    const struct sb_request *req = lc->call->req;
    struct embed_job *j = NULL;
    for (int32_t i = 0; i < e->n_slots && !j; i++) {
        j = m->jobs[i].lc ? NULL : &m->jobs[i];
    }
    char err[512];
    int rc = SB_OK;
    if (!j) { /* cannot happen: the engine takes no more calls than there is room for */
        sb__lc_post_error(lc, SB_ESTATE, 500, 0, "no room was free for the request");
        sb__lc_release(lc);
        return;
    }
    *j = (struct embed_job){.lc = lc, .ticket = ++m->next_ticket};
    sb__local_busy_add(e->b, 1);
    if (req->n_inputs == 0) {
        job_fail(e, j, SB_EINVAL, 400, "the request has no input to embed");
        return;
    }
    if (req->dimensions < 0 || req->dimensions > m->n_embd) {
        snprintf(err, sizeof err,
                 "Invalid 'dimensions': %d. Model %s returns %d-dimensional embeddings, so "
                 "dimensions must be between 1 and %d (or omitted for all %d).",
                 (int)req->dimensions, e->b->name, m->n_embd, m->n_embd, m->n_embd);
        struct sb_event ev = {.type = SB_EV_ERROR};
        ev.error.code = SB_EINVAL;
        ev.error.http_status = 400;
        ev.error.message = sb_str_c(err);
        ev.error.param = SB_STR_LIT("dimensions");
        sb__lc_post(lc, &ev);
        job_release(e, j);
        return;
    }
    rc = job_tokenize(e, j, req, err, sizeof err);
    if (rc != SB_OK) {
        job_fail(e, j, rc, rc == SB_ENOMEM ? 500 : 400, err);
        return;
    }
    sb__local_post_start(e->b, lc);
}

void sb__local_embed_reap(struct local_engine *e)
{
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct embed_job *j = &e->embed->jobs[i];
        if (j->lc && (atomic_load(&j->lc->canceled) || j->lc->broken)) {
            job_release(e, j);
        }
    }
}

void sb__local_embed_drain(struct local_engine *e, const char *msg)
{
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct embed_job *j = &e->embed->jobs[i];
        if (j->lc) {
            job_fail(e, j, SB_EBACKEND, 503, msg);
        }
    }
}

/* The job with inputs left to batch that was admitted first, or NULL. */
static struct embed_job *oldest_pending(struct local_engine *e)
{
    struct embed_job *best = NULL;
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct embed_job *j = &e->embed->jobs[i];
        if (j->lc && j->next < j->n_inputs && (!best || j->ticket < best->ticket)) {
            best = j;
        }
    }
    return best;
}

/* Fills the batch with whole inputs; returns how many sequences it holds. */
static int32_t build_batch(struct local_engine *e)
{
    struct local_embed *m = e->embed;
    struct llama_batch *batch = &e->batch;
    batch->n_tokens = 0;
    int32_t n_lanes = 0;
    struct embed_job *j;
    while (n_lanes < e->n_slots && (j = oldest_pending(e)) != NULL) {
        int32_t from = j->off[j->next];
        int32_t len = j->off[j->next + 1] - from;
        if (batch->n_tokens + len > e->prompt_budget) {
            break; /* it waits for the next step, and so does everything behind it */
        }
        for (int32_t k = 0; k < len; k++) {
            int32_t i = batch->n_tokens++;
            batch->token[i] = j->toks[from + k];
            batch->pos[i] = k;
            batch->n_seq_id[i] = 1;
            batch->seq_id[i][0] = n_lanes;
            batch->logits[i] = true; /* pooled embeddings want every token's output */
        }
        m->lanes[n_lanes++] = (struct lane){j, j->next};
        j->next++;
    }
    return n_lanes;
}

void sb__local_embed_normalize(const float *v, size_t dim, float *out)
{
    double sum = 0;
    for (size_t i = 0; i < dim; i++) {
        sum += (double)v[i] * (double)v[i];
    }
    double scale = sum > 0 ? 1.0 / sqrt(sum) : 0.0;
    for (size_t i = 0; i < dim; i++) {
        out[i] = (float)(v[i] * scale);
    }
}

/* Sends the vector of one decoded sequence; ends its job after its last input. */
static void send_vector(struct local_engine *e, int32_t seq, struct lane *ln)
{
    struct local_embed *m = e->embed;
    struct embed_job *j = ln->job;
    if (!j->lc) {
        return; /* the job failed earlier in this step */
    }
    const float *v = llama_get_embeddings_seq(e->ctx, seq);
    if (!v) {
        job_fail(e, j, SB_EBACKEND, 500, "the local model produced no embedding");
        return;
    }
    /* Admission checked 0 < dimensions <= n_embd; 0 asks for them all. */
    int32_t asked = j->lc->call->req->dimensions;
    size_t dim = (size_t)(asked > 0 ? asked : m->n_embd);
    sb__local_embed_normalize(v, dim, m->vec);
    struct sb_event ev = {.type = SB_EV_EMBEDDING};
    ev.embedding.index = (int32_t)ln->input;
    ev.embedding.values = m->vec;
    ev.embedding.dim = dim;
    sb__lc_post(j->lc, &ev);
    if (++j->done < j->n_inputs) {
        return;
    }
    ev = (struct sb_event){.type = SB_EV_USAGE};
    ev.usage.prompt_tokens = j->n_tokens;
    sb__lc_post(j->lc, &ev);
    ev = (struct sb_event){.type = SB_EV_FINISH};
    ev.finish.reason = SB_FINISH_STOP;
    sb__lc_post(j->lc, &ev);
    job_release(e, j);
}

bool sb__local_embed_step(struct local_engine *e)
{
    int32_t n_lanes = build_batch(e);
    if (n_lanes == 0) {
        return false;
    }
    llama_memory_clear(llama_get_memory(e->ctx), true);
    int rc = llama_decode(e->ctx, e->batch);
    for (int32_t i = 0; i < n_lanes; i++) {
        struct lane *ln = &e->embed->lanes[i];
        if (rc != 0 && ln->job->lc) {
            sb_log(SB_LOG_ERROR, ln->job->lc->call->req->id,
                   "local model %s: llama_decode failed (%d)", e->b->name, rc);
            job_fail(e, ln->job, SB_EBACKEND, 500, "the local model failed to embed the input");
        } else if (rc == 0) {
            send_vector(e, i, ln);
        }
    }
    return true;
}
