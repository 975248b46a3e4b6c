/* The HTTP server: libevent evhttp on an I/O loop, a table of routes, request limits, and the
 * bridge between a codec, a backend and the client's connection (streaming included). */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include "backend/backend.h"
#include "config/config.h"

struct sb_server;
struct sb_ledger;  /* ledger/ledger.h */
struct sb_pricing; /* report/pricing.h */
struct sb_router;  /* route/route.h */
struct sb_privacy; /* privacy/privacy.h */
struct sb_resil;   /* resil/resil.h */
struct sb_auth;    /* auth/auth.h */
struct sb_budget;  /* budget/budget.h */
struct sb_alerts;  /* alert/alert.h */

/* Binds the listener from cfg->listen. backends[i] serves cfg->models[i]; both arrays are
 * borrowed and must outlive the server. Returns 0 and *out, or a negative code with a message in
 * err (e.g. the address is in use). */
int sb_server_new(const struct sb_config *cfg, struct sb_backend **backends, size_t n_backends,
                  struct sb_server **out, char *err, size_t err_size);
/* Every model request (success, error or cancelled) is recorded as one row in ledger (borrowed:
 * it must stay open until sb_server_run has returned; close it after that, which flushes what the
 * stopping server recorded). NULL, the default, records nothing. Call before sb_server_run. */
void sb_server_set_ledger(struct sb_server *s, struct sb_ledger *ledger);
/* The prices that the ledger's cost and switchboard_cost_microusd_total come from (borrowed: it
 * must outlive the server). NULL, the default, uses the bundled table alone (sb_price_lookup);
 * local models are never priced here. Call before sb_server_run. */
void sb_server_set_pricing(struct sb_server *s, const struct sb_pricing *pricing);
/* Every priced request's cost is fed to alerts' spend-spike detector (borrowed: it must outlive
 * the server). NULL, the default, watches nothing. Call before sb_server_run. */
void sb_server_set_alerts(struct sb_server *s, struct sb_alerts *alerts);
/* Routes every model request by policy (route/route.h: the call order) through router, scanning
 * it for PII with privacy (may be NULL: nothing is detected) and taking each model's breaker from
 * resil (may be NULL). All borrowed: they must outlive the server. Without this call (router
 * NULL) a request is served by backends[i] as it is. Call before sb_server_run. Returns 0, or
 * SB_ENOMEM (the loop's scan scratch), and nothing is set. */
int sb_server_set_routing(struct sb_server *s, const struct sb_router *router,
                          const struct sb_privacy *privacy, struct sb_resil *resil);
/* API keys, rate limits and budgets (docs/keys-and-budgets.md): auth (NULL = keys off) identifies
 * the caller of every model request and holds its rate limiter; budget (NULL = none) reserves
 * the worst-case cost of each request's routed chain before it is sent, so the model's scope
 * applies always, and sensitivity scopes, rate limits and budgets once sb_server_set_routing has
 * been called. Both borrowed: they must outlive the server. Call before sb_server_run. */
void sb_server_set_quota(struct sb_server *s, struct sb_auth *auth, struct sb_budget *budget);
/* The port actually bound (useful when the config asked for port 0). */
int sb_server_port(const struct sb_server *s);
/* Runs the loop until SIGINT or SIGTERM; then stops accepting, lets in-flight requests finish
 * (cancelling them after a grace period), and returns 0. */
int sb_server_run(struct sb_server *s);
/* Asks a running server to stop, as SIGTERM would. Thread-safe. */
void sb_server_stop(struct sb_server *s);
void sb_server_free(struct sb_server *s);

#endif
