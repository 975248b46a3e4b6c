/* Reports and advice from the ledger: `switchboard report` (tokens, cost, latency, what-ifs and
 * break-even, as text, JSON or self-contained HTML) and `switchboard advise` (LOCAL, CLOUD or
 * HYBRID with numbered reasons). */
#ifndef SB_REPORT_H
#define SB_REPORT_H

#include "config/config.h"
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model whose prices the all-cloud what-if uses unless --compare-model names another: a
 * cheap, capable, widely used cloud model, so "all cloud" is the honest low end of cloud cost. */
#define SB_REPORT_DEFAULT_COMPARE "gpt-4o-mini"
/* The window a report covers unless --since says otherwise. */
#define SB_REPORT_DEFAULT_WINDOW_MS ((int64_t)30 * 86400 * 1000)

enum sb_report_format { SB_REPORT_TEXT, SB_REPORT_JSON, SB_REPORT_HTML };

/* What to report on. Every pointer is borrowed for the call. */
struct sb_report_params {
    const char *ledger;          /* a SQLite file or a postgres:// URL */
    const struct sb_config *cfg; /* models (local or cloud, context), pricing, infra */
    int64_t window_ms;           /* rows from now - window_ms on; <= 0 = every row */
    int64_t now_ms;              /* the end of the window, Unix ms; 0 = the current time */
    const char *compare_model;   /* NULL = SB_REPORT_DEFAULT_COMPARE */
    enum sb_report_format format;
};

/* Appends the report to out. Returns 0; on failure err receives one line saying what went wrong
 * and what to do (never a URL's password), and the result is SB_EIO (the ledger cannot be read
 * or reached), SB_ENOMEM or SB_ETOOBIG (out's maximum). */
int sb_report_write(const struct sb_report_params *p, struct sb_buf *out, char *err,
                    size_t err_size);

/* The advice. */
enum sb_advice { SB_ADVICE_LOCAL, SB_ADVICE_CLOUD, SB_ADVICE_HYBRID };

/* "LOCAL", "CLOUD" or "HYBRID" (static). */
const char *sb_advice_name(enum sb_advice a);

/* Appends the advice (the verdict, then numbered reasons; JSON when p->format is
 * SB_REPORT_JSON, text otherwise) to out and stores the verdict in *verdict (when not NULL).
 * Returns as sb_report_write. */
int sb_advise_write(const struct sb_report_params *p, struct sb_buf *out, enum sb_advice *verdict,
                    char *err, size_t err_size);

/* The subcommands, for src/cli's table: argv[0] is the first argument after the command word.
 * They print to stdout (the report) and stderr (problems) and return the process's exit status:
 * 0, 1 when the ledger cannot be read, 2 for bad usage or configuration. */
int sb_report_cli(int argc, char **argv);
int sb_advise_cli(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
