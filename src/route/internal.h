/* The route module's private vocabulary, shared by its files (and its tests). */
#ifndef SB_ROUTE_INTERNAL_H
#define SB_ROUTE_INTERNAL_H

#include "route/route.h"

/* A config without a context for a local model: the engine's cap on the training context. */
#define SB__ROUTE_LOCAL_CTX_DEFAULT 8192

/* The sensitivity one PII kind implies (input.c's table; custom kinds are medium). */
enum sb_sensitivity sb__route_kind_sensitivity(uint32_t kind);
/* The kinds (bits of struct sb_pii_counts.kinds) that make a request high. */
uint64_t sb__route_high_kinds(void);

/* The model whose tokenizer counts a request for alias m: m itself when local, else the local
 * model the hybrid policy would try first; -1 when there is none. */
ptrdiff_t sb__route_tokenizer_model(const struct sb_router *r, size_t m, enum sb_request_kind kind);
/* The backend serving cfg->models[i], or NULL for a router built without backends. */
struct sb_backend *sb__route_backend(const struct sb_router *r, size_t i);
/* The context window the decision assumes for cfg->models[i] (0 = unknown, assumed to fit). */
int64_t sb__route_model_ctx(const struct sb_router *r, size_t i);
/* The config the router was built from. */
const struct sb_config *sb__route_config(const struct sb_router *r);
/* A PII kind's name for explanations ("email", "term", a custom pattern's name), or "?". */
const char *sb__route_kind_name(const struct sb_router *r, uint32_t kind);

#endif
