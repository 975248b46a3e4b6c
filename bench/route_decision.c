/* Time of one routing decision (sb_route_decide, without the PII scan) on a config with four
 * models and four rules, next to two baselines run in the same process: an empty call through a
 * function pointer, and a memcpy of a 2 KiB request body. Target: a decision in <= 5 µs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "route/route.h"

static const char config_text[] =
    "models:\n"
    "  - {name: local, backend: local, path: m.gguf, context: 8192}\n"
    "  - {name: embed, backend: local, path: e.gguf, embeddings: true}\n"
    "  - {name: gpt-4o-mini, backend: openai}\n"
    "  - {name: claude, backend: anthropic, fallback: [local]}\n"
    "policy:\n"
    "  rules:\n"
    "    - id: interns-no-tools\n"
    "      when: {team: [interns, contractors], tools: true}\n"
    "      action: {deny: \"tool use is not enabled for your team\"}\n"
    "    - id: secrets-stay-home\n"
    "      when: {pii: [aws_key, api_key, github_token, private_key]}\n"
    "      action: {route: [local]}\n"
    "    - id: long-outputs\n"
    "      when: {model: [local], min_max_tokens: 16000, sensitivity: [low]}\n"
    "      action: {route: [claude, local], pseudonymize: true}\n"
    "    - id: low-budget\n"
    "      when: {budget_below_usd: 1}\n"
    "      action: {route: [local]}\n"
    "  default: hybrid\n";

/* Results land here so the compiler cannot drop the work. */
static volatile uint64_t sink;

static void empty_call(void *ud)
{
    SB_UNUSED(ud);
}

struct copy_case {
    char src[2048];
    char dst[2048];
};

static void copy_body(void *ud)
{
    struct copy_case *c = ud;
    memcpy(c->dst, c->src, sizeof c->src);
    /* An asm barrier: the copy is observed, so it is not elided. */
    __asm__ volatile("" : : "r"(c->dst) : "memory");
}

struct decide_case {
    const struct sb_router *r;
    struct sb_route_input in;
    int want; /* the expected return, checked once */
    struct sb_route_decision d;
};

static void decide(void *ud)
{
    struct decide_case *c = ud;
    int rc = sb_route_decide(c->r, &c->in, &c->d);
    sink += (uint64_t)(rc + (int)c->d.n_chain);
}

/* Best of reps runs of n calls: nanoseconds per call. The best, not the mean: what the code
 * costs, without the scheduler's interruptions. */
static double time_ns(void (*volatile fn)(void *), void *ud, size_t n, int reps)
{
    double best = 1e300;
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = sb_now_ns();
        for (size_t i = 0; i < n; i++)
            fn(ud);
        double per = (double)(sb_now_ns() - t0) / (double)n;
        best = per < best ? per : best;
    }
    return best;
}

static struct sb_pii_counts counts_of(int kind)
{
    struct sb_pii_counts c = {0};
    if (kind >= 0) {
        c.by_kind[kind] = 1;
        c.kinds = (uint64_t)1 << kind;
        c.total = 1;
    }
    return c;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    int reps = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    if (n == 0 || reps <= 0) {
        fprintf(stderr, "usage: route_decision [calls per run] [runs]\n");
        return 2;
    }
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    struct sb_config *cfg = NULL;
    struct sb_router *r = NULL;
    char err[256];
    if (sb_config_parse("bench.yaml", config_text, strlen(config_text), NULL, &cfg, &errors) != 0 ||
        sb_router_new(cfg, NULL, 0, &r, err, sizeof err) != 0) {
        fprintf(stderr, "setup failed: %s%s\n", errors.p ? errors.p : "", err);
        return 1;
    }
    sb_buf_free(&errors);

    struct sb_pii_counts email = counts_of(SB_PII_EMAIL), aws = counts_of(SB_PII_AWS_KEY);
    struct sb_pii_counts none = counts_of(-1);
    /* A request every rule looks at and none claims: the longest walk, then the hybrid policy. */
    struct sb_route_input base = {.model = SB_STR_LIT("local"),
                                  .kind = SB_REQ_CHAT,
                                  .key = SB_STR_LIT("svc-billing"),
                                  .team = SB_STR_LIT("finance"),
                                  .pii = &email,
                                  .prompt_tokens = 812,
                                  .max_tokens = 512,
                                  .tools = true,
                                  .has_budget = true,
                                  .budget_left_micros = 48250000};
    struct decide_case cases[] = {
        {.r = r, .in = base, .want = 0},
        {.r = r, .in = base, .want = 0},
        {.r = r, .in = base, .want = 0},
        {.r = r, .in = base, .want = SB_EDENIED},
    };
    const char *names[] = {
        "decide: 4 rules miss, hybrid (medium)",
        "decide: rule 2 matches (aws_key)",
        "decide: hybrid, cloud alias (low)",
        "decide: hybrid denies (high, long)",
    };
    cases[1].in.pii = &aws;
    cases[2].in.model = SB_STR_LIT("claude");
    cases[2].in.pii = &none;
    cases[2].in.tools = false;
    cases[3].in.label = SB_SENSITIVITY_HIGH;
    cases[3].in.prompt_tokens = 20000;

    static struct copy_case copy;
    memset(copy.src, 'x', sizeof copy.src);
    double t_empty = time_ns(empty_call, NULL, n, reps);
    double t_copy = time_ns(copy_body, &copy, n, reps);
    printf("%-40s %10s %10s %12s %12s\n", "case", "ns/call", "us/call", "x empty", "x memcpy");
    printf("%-40s %10.1f %10.4f\n", "baseline: empty call", t_empty, t_empty / 1000);
    printf("%-40s %10.1f %10.4f\n", "baseline: memcpy 2 KiB request", t_copy, t_copy / 1000);
    double worst = 0;
    int status = 0;
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct decide_case *c = &cases[i];
        int rc = sb_route_decide(c->r, &c->in, &c->d);
        if (rc != c->want) {
            fprintf(stderr, "%s: returned %d, expected %d (%s)\n", names[i], rc, c->want,
                    c->d.reason);
            status = 1;
        }
        double t = time_ns(decide, c, n, reps);
        worst = t > worst ? t : worst;
        printf("%-40s %10.1f %10.4f %11.0fx %11.1fx\n", names[i], t, t / 1000,
               t_empty > 0 ? t / t_empty : 0, t_copy > 0 ? t / t_copy : 0);
        printf("    %s\n", c->d.reason);
    }
    printf("target: a decision in <= 5 us: %s (worst case %.3f us)\n",
           worst <= 5000 ? "met" : "MISSED", worst / 1000);
    sb_router_free(r);
    sb_config_free(cfg);
    return status != 0 ? status : worst <= 5000 ? 0 : 1;
}
