/* Tests for raising and delivering alerts, against a loopback HTTP receiver run by this file (a
 * thread with a listening socket on 127.0.0.1): the exact JSON of budget and spike alerts, the
 * log line, retries after a 500, giving up, a full queue, the drain at shutdown, the metric, and
 * the config that turns alerts on. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../config/config_test.h"
#include "alert/alert.h"
#include "config/config.h"
#include "metrics/metrics.h"

/* Hang guards, not timings: how long a test waits for something that should happen at once. */
#define GUARD_MS 30000

/* ---------------------------------------------------------------------------------------------
 * The receiver: answers each POST with the next scripted status (then 200), after recording it.
 * ------------------------------------------------------------------------------------------- */
#define RX_MAX 16

struct rx_request {
    char method[8];
    char path[64];
    char content_type[64];
    char body[4096];
};

struct receiver {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int statuses[8]; /* the replies, in order; 200 after them */
    size_t n_statuses;
    bool hold_first; /* the first request gets its reply only once released */
    bool released;
    struct rx_request got[RX_MAX];
    size_t n;
};

static struct receiver rx;

/* Reads one request from fd into r; false on a malformed one. */
static bool read_request(int fd, struct rx_request *r)
{
    char buf[8192];
    size_t len = 0;
    char *end = NULL;
    while (end == NULL && len < sizeof buf - 1) {
        ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);
        if (got <= 0)
            return false;
        len += (size_t)got;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (end == NULL)
        return false;
    size_t head_len = (size_t)(end - buf) + 4;
    size_t body_len = 0;
    for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            body_len = strtoul(line + 15, NULL, 10);
        if (strncasecmp(line, "Content-Type:", 13) == 0) {
            const char *v = line + 13 + strspn(line + 13, " ");
            size_t n = strcspn(v, "\r");
            snprintf(r->content_type, sizeof r->content_type, "%.*s", (int)n, v);
        }
    }
    if (body_len >= sizeof r->body || head_len + body_len > sizeof buf - 1)
        return false;
    while (len < head_len + body_len) {
        ssize_t got = read(fd, buf + len, head_len + body_len - len);
        if (got <= 0)
            return false;
        len += (size_t)got;
    }
    memcpy(r->body, buf + head_len, body_len);
    r->body[body_len] = '\0';
    size_t m = strcspn(buf, " ");
    snprintf(r->method, sizeof r->method, "%.*s", (int)m, buf);
    size_t p = strcspn(buf + m + 1, " ");
    snprintf(r->path, sizeof r->path, "%.*s", (int)p, buf + m + 1);
    return true;
}

static void *receiver_main(void *arg)
{
    SB_UNUSED(arg);
    for (;;) {
        int c = accept(rx.fd, NULL, NULL);
        if (c < 0)
            return NULL; /* the listener was shut down */
        struct rx_request r = {0};
        if (!read_request(c, &r)) {
            close(c);
            continue;
        }
        pthread_mutex_lock(&rx.lock);
        size_t seq = rx.n;
        if (rx.n < RX_MAX)
            rx.got[rx.n++] = r;
        pthread_cond_broadcast(&rx.cond);
        while (rx.hold_first && seq == 0 && !rx.released)
            pthread_cond_wait(&rx.cond, &rx.lock);
        int status = seq < rx.n_statuses ? rx.statuses[seq] : 200;
        pthread_mutex_unlock(&rx.lock);
        const char *body = status == 200 ? "ok" : status == 400 ? "invalid_payload" : "boom";
        char reply[256];
        int n = snprintf(reply, sizeof reply,
                         "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         status, strlen(body), body);
        ssize_t w = write(c, reply, (size_t)n);
        SB_UNUSED(w);
        close(c);
    }
}

static void rx_start(void)
{
    pthread_mutex_init(&rx.lock, NULL);
    pthread_cond_init(&rx.cond, NULL);
    rx.fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(rx.fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(rx.fd, (struct sockaddr *)&sin, sizeof sin), 0);
    cr_assert_eq(listen(rx.fd, 16), 0);
    socklen_t len = sizeof sin;
    cr_assert_eq(getsockname(rx.fd, (struct sockaddr *)&sin, &len), 0);
    rx.port = ntohs(sin.sin_port);
    cr_assert_eq(pthread_create(&rx.thread, NULL, receiver_main, NULL), 0);
}

static void rx_stop(void)
{
    pthread_mutex_lock(&rx.lock);
    rx.released = true;
    pthread_cond_broadcast(&rx.cond);
    pthread_mutex_unlock(&rx.lock);
    shutdown(rx.fd, SHUT_RDWR);
    pthread_join(rx.thread, NULL);
    close(rx.fd);
}

/* Waits until the receiver has n requests (or the guard passes); returns how many it has. */
static size_t rx_wait(size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += GUARD_MS / 1000;
    pthread_mutex_lock(&rx.lock);
    while (rx.n < n && pthread_cond_timedwait(&rx.cond, &rx.lock, &until) == 0) {
    }
    size_t got = rx.n;
    pthread_mutex_unlock(&rx.lock);
    return got;
}

/* How many requests the receiver has now. */
static size_t rx_count(void)
{
    pthread_mutex_lock(&rx.lock);
    size_t n = rx.n;
    pthread_mutex_unlock(&rx.lock);
    return n;
}

static void rx_release(void)
{
    pthread_mutex_lock(&rx.lock);
    rx.released = true;
    pthread_cond_broadcast(&rx.cond);
    pthread_mutex_unlock(&rx.lock);
}

TestSuite(alert, .init = rx_start, .fini = rx_stop);

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */
static char url[64];

/* Alerts posting to the receiver's /hook as "test-gw", with quick retries. */
static struct sb_alert_params base_params(void)
{
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", rx.port);
    return (struct sb_alert_params){
        .webhook_url = url,
        .timeout_ms = GUARD_MS,
        .retries = 2,
        .backoff_ms = 10,
        .drain_ms = GUARD_MS,
        .instance = "test-gw",
        .queue_size = 8,
    };
}

static struct sb_alerts *make(const struct sb_alert_params *p)
{
    struct sb_alerts *a = NULL;
    char err[256];
    cr_assert_eq(sb_alert_new(p, &a, err, sizeof err), 0, "%s", err);
    return a;
}

/* Replaces the value of "ts" in body with TS after checking that it is an RFC 3339 UTC time. */
static void mask_ts(char *body)
{
    char *ts = strstr(body, "\"ts\":\"");
    cr_assert_not_null(ts, "%s", body);
    ts += 6;
    const char *shape = "dddd-dd-ddTdd:dd:ddZ";
    for (size_t i = 0; shape[i] != '\0'; i++) {
        bool ok = shape[i] == 'd' ? ts[i] >= '0' && ts[i] <= '9' : ts[i] == shape[i];
        cr_assert(ok, "ts is not RFC 3339: %s", body);
    }
    cr_assert_eq(ts[20], '"');
    memcpy(ts, "TS", 2);
    memmove(ts + 2, ts + 20, strlen(ts + 20) + 1);
}

static void assert_posted(size_t i, const char *want)
{
    struct rx_request *r = &rx.got[i];
    cr_assert_str_eq(r->method, "POST");
    cr_assert_str_eq(r->path, "/hook");
    cr_assert_str_eq(r->content_type, "application/json");
    mask_ts(r->body);
    cr_assert_str_eq(r->body, want);
}

static void assert_stats(struct sb_alerts *a, uint64_t raised, uint64_t sent, uint64_t failed,
                         uint64_t dropped)
{
    struct sb_alert_stats st;
    sb_alert_stats(a, &st);
    cr_assert_eq(st.raised, raised, "raised %llu", (unsigned long long)st.raised);
    cr_assert_eq(st.sent, sent, "sent %llu", (unsigned long long)st.sent);
    cr_assert_eq(st.failed, failed, "failed %llu", (unsigned long long)st.failed);
    cr_assert_eq(st.dropped, dropped, "dropped %llu", (unsigned long long)st.dropped);
}

/* Whether /metrics would show switchboard_alerts_total{type,outcome} at value. */
static bool metric_is(const char *type, const char *outcome, int value)
{
    struct sb_buf out;
    char want[160];
    sb_buf_init(&out, 1 << 20);
    cr_assert_eq(sb_metrics_render(&out), 0);
    snprintf(want, sizeof want, "\nswitchboard_alerts_total{type=\"%s\",outcome=\"%s\"} %d\n", type,
             outcome, value);
    bool found = strstr(out.p, want) != NULL;
    sb_buf_free(&out);
    return found;
}

/* ---------------------------------------------------------------------------------------------
 * Budget thresholds
 * ------------------------------------------------------------------------------------------- */
static const char budget_80[] =
    "{\"type\":\"budget_threshold\",\"ts\":\"TS\",\"instance\":\"test-gw\",\"scope\":\"key\","
    "\"name\":\"alice\",\"percent\":80,\"spent_microusd\":8000000,\"limit_microusd\":10000000,"
    "\"text\":\"[test-gw] budget of key \\\"alice\\\" reached 80%: $8.00 spent of $10.00\"}";

Test(alert, budget_threshold_posts_this_json)
{
    struct sb_alert_params p = base_params();
    struct sb_alerts *a = make(&p);
    sb_alert_budget(a, "key", "alice", 80, 8000000, 10000000);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(1), 1);
    assert_posted(0, budget_80);
    assert_stats(a, 1, 1, 0, 0);
    cr_assert(metric_is("budget_threshold", "sent", 1));
    sb_alert_free(a);
}

Test(alert, global_budget_has_a_null_name)
{
    struct sb_alert_params p = base_params();
    struct sb_alerts *a = make(&p);
    sb_alert_budget(a, "global", NULL, 100, 10000012, 10000000);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(1), 1);
    assert_posted(0, "{\"type\":\"budget_threshold\",\"ts\":\"TS\",\"instance\":\"test-gw\","
                     "\"scope\":\"global\",\"name\":null,\"percent\":100,"
                     "\"spent_microusd\":10000012,\"limit_microusd\":10000000,"
                     "\"text\":\"[test-gw] global budget reached 100%: $10.000012 spent of "
                     "$10.00\"}");
    sb_alert_free(a);
}

Test(alert, names_are_escaped_and_unknown_scopes_dropped)
{
    struct sb_alert_params p = base_params();
    struct sb_alerts *a = make(&p);
    sb_alert_budget(a, "project", "x", 50, 1, 2);
    assert_stats(a, 0, 0, 0, 0);
    sb_alert_budget(a, "team", "r&d \"core\"\n", 50, 500000, 1000000);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(1), 1);
    assert_posted(0, "{\"type\":\"budget_threshold\",\"ts\":\"TS\",\"instance\":\"test-gw\","
                     "\"scope\":\"team\",\"name\":\"r&d \\\"core\\\"?\",\"percent\":50,"
                     "\"spent_microusd\":500000,\"limit_microusd\":1000000,"
                     "\"text\":\"[test-gw] budget of team \\\"r&d \\\"core\\\"?\\\" reached 50%: "
                     "$0.50 spent of $1.00\"}");
    sb_alert_free(a);
}

/* Runs fn with stderr going to a file, and returns what was written (malloc'd). */
static char *capture_stderr(void (*fn)(struct sb_alerts *), struct sb_alerts *a)
{
    char path[] = "/tmp/sb-alert-log-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    int saved = dup(STDERR_FILENO);
    cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
    fn(a);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    cr_assert_eq(pread(fd, text, (size_t)size, 0), size);
    close(fd);
    unlink(path);
    return text;
}

static void raise_budget(struct sb_alerts *a)
{
    sb_alert_budget(a, "key", "alice", 80, 8000000, 10000000);
}

Test(alert, without_a_webhook_alerts_are_logged_only)
{
    struct sb_alert_params p = base_params();
    p.webhook_url = NULL;
    struct sb_alerts *a = make(&p);
    char *log = capture_stderr(raise_budget, a);
    cr_assert_not_null(
        strstr(log, " warn  alert budget_threshold: budget of key \"alice\" reached 80%: $8.00 "
                    "spent of $10.00\n"),
        "%s", log);
    free(log);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    assert_stats(a, 1, 0, 0, 0);
    sb_alert_free(a);
    cr_assert_eq(rx_count(), 0, "nothing was posted");
}

/* ---------------------------------------------------------------------------------------------
 * Spend spikes
 * ------------------------------------------------------------------------------------------- */
static struct sb_alert_params spike_params(int64_t min_micros)
{
    struct sb_alert_params p = base_params();
    p.spike = true;
    p.spike_params = (struct sb_alert_spike_params){.window_ms = 10000,
                                                    .baseline_ms = 60000,
                                                    .factor_micros = 3000000,
                                                    .min_micros = min_micros};
    return p;
}

static int64_t now_ms(void)
{
    return (int64_t)(sb_now_ns() / 1000000u);
}

Test(alert, spike_without_a_baseline)
{
    struct sb_alert_params p = spike_params(1000);
    struct sb_alerts *a = make(&p);
    int64_t t = now_ms();
    sb_alert_spend(a, t, 500);
    sb_alert_spend(a, t, -1); /* unpriced */
    assert_stats(a, 0, 0, 0, 0);
    sb_alert_spend(a, t, 600);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(1), 1);
    assert_posted(0, "{\"type\":\"spend_spike\",\"ts\":\"TS\",\"instance\":\"test-gw\","
                     "\"window_s\":10,\"window_microusd\":1100,\"baseline_s\":0,"
                     "\"baseline_microusd\":0,\"expected_microusd\":0,\"ratio\":null,"
                     "\"factor\":3,\"min_microusd\":1000,"
                     "\"text\":\"[test-gw] spend spike: $0.0011 in the last 10 s, with no spend "
                     "before it to compare with; alerts at $0.001\"}");
    assert_stats(a, 1, 1, 0, 0);
    cr_assert(metric_is("spend_spike", "sent", 1));
    sb_alert_free(a);
}

Test(alert, spike_against_a_baseline)
{
    struct sb_alert_params p = spike_params(2000);
    p.spike_params.factor_micros = 2500000;
    struct sb_alerts *a = make(&p);
    /* From the next whole second: 100 a second for 70 s (the clock is injected). */
    int64_t base = (now_ms() / 1000 + 1) * 1000;
    for (int i = 0; i < 70; i++)
        sb_alert_spend(a, base + (int64_t)i * 1000, 100);
    assert_stats(a, 0, 0, 0, 0);
    /* The window holds 900, the baseline 6000 over 60 s: 2.5 times is 2500 a window. */
    sb_alert_spend(a, base + 70000, 1599);
    assert_stats(a, 0, 0, 0, 0);
    sb_alert_spend(a, base + 70000, 1);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(1), 1);
    assert_posted(0, "{\"type\":\"spend_spike\",\"ts\":\"TS\",\"instance\":\"test-gw\","
                     "\"window_s\":10,\"window_microusd\":2500,\"baseline_s\":60,"
                     "\"baseline_microusd\":6000,\"expected_microusd\":1000,\"ratio\":2.50,"
                     "\"factor\":2.5,\"min_microusd\":2000,"
                     "\"text\":\"[test-gw] spend spike: $0.0025 in the last 10 s, 2.50 times the "
                     "average rate of the 1 min before ($0.001 per 10 s); alerts at 2.5 times "
                     "and $0.002\"}");
    sb_alert_free(a);
}

/* ---------------------------------------------------------------------------------------------
 * Delivery
 * ------------------------------------------------------------------------------------------- */
Test(alert, a_500_is_retried)
{
    rx.statuses[0] = 500;
    rx.n_statuses = 1;
    struct sb_alert_params p = base_params();
    struct sb_alerts *a = make(&p);
    raise_budget(a);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(2), 2);
    cr_assert_str_eq(rx.got[0].body, rx.got[1].body, "the same alert both times");
    assert_posted(1, budget_80);
    assert_stats(a, 1, 1, 0, 0);
    sb_alert_free(a);
}

Test(alert, retries_run_out)
{
    rx.statuses[0] = 500;
    rx.statuses[1] = 503;
    rx.statuses[2] = 502;
    rx.n_statuses = 3;
    struct sb_alert_params p = base_params();
    struct sb_alerts *a = make(&p);
    raise_budget(a);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(3), 3, "the first try and 2 retries");
    assert_stats(a, 1, 0, 1, 0);
    cr_assert(metric_is("budget_threshold", "failed", 1));
    sb_alert_free(a);
    cr_assert_eq(rx_count(), 3, "no fourth try");
}

Test(alert, a_400_is_not_retried)
{
    rx.statuses[0] = 400;
    rx.n_statuses = 1;
    struct sb_alert_params p = base_params();
    struct sb_alerts *a = make(&p);
    raise_budget(a);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    raise_budget(a);
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(2), 2);
    assert_stats(a, 2, 1, 1, 0);
    sb_alert_free(a);
}

Test(alert, a_full_queue_drops_and_counts)
{
    rx.hold_first = true;
    struct sb_alert_params p = base_params();
    p.queue_size = 1;
    struct sb_alerts *a = make(&p);
    raise_budget(a);
    /* The sender holds the first alert in its POST until the receiver is released. */
    cr_assert_eq(rx_wait(1), 1);
    sb_alert_budget(a, "team", "ops", 50, 1, 2); /* queued: the queue's one place */
    sb_alert_budget(a, "team", "ops", 80, 1, 2); /* dropped */
    assert_stats(a, 3, 0, 0, 1);
    cr_assert(metric_is("budget_threshold", "dropped", 1));
    rx_release();
    cr_assert(sb_alert_flush(a, GUARD_MS));
    cr_assert_eq(rx_wait(2), 2);
    cr_assert_not_null(strstr(rx.got[1].body, "\"percent\":50"), "%s", rx.got[1].body);
    assert_stats(a, 3, 2, 0, 1);
    sb_alert_free(a);
    cr_assert_eq(rx_count(), 2, "the dropped alert never came");
}

Test(alert, free_posts_what_is_queued)
{
    struct sb_alert_params p = base_params();
    struct sb_alerts *a = make(&p);
    for (int i = 0; i < 3; i++)
        raise_budget(a);
    sb_alert_free(a);
    cr_assert_eq(rx_wait(3), 3);
    cr_assert(metric_is("budget_threshold", "sent", 3));
}

Test(alert, free_gives_up_on_a_webhook_that_is_down)
{
    /* A port that was just free: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    char down[64];
    snprintf(down, sizeof down, "http://127.0.0.1:%d/hook", ntohs(sin.sin_port));
    struct sb_alert_params p = base_params();
    p.webhook_url = down;
    p.backoff_ms = 60000; /* a retry would come long after the drain */
    p.drain_ms = 100;
    struct sb_alerts *a = make(&p);
    raise_budget(a);
    raise_budget(a);
    /* Returns once the first POST is refused: its retry and the second alert are given up. */
    sb_alert_free(a);
    cr_assert(metric_is("budget_threshold", "failed", 2));
}

Test(alert, bad_params_are_refused)
{
    struct sb_alerts *a = NULL;
    char err[256];
    struct sb_alert_params p = base_params();
    p.webhook_url = "ftp://example.com/x";
    cr_assert_eq(sb_alert_new(&p, &a, err, sizeof err), SB_EINVAL);
    cr_assert_not_null(strstr(err, "http"), "%s", err);
    p = base_params();
    p.queue_size = 0;
    cr_assert_eq(sb_alert_new(&p, &a, err, sizeof err), SB_EINVAL);
    p = spike_params(0);
    p.spike_params.factor_micros = 1000000;
    cr_assert_eq(sb_alert_new(&p, &a, err, sizeof err), SB_EINVAL);
    cr_assert_not_null(strstr(err, "spend_spike"), "%s", err);
    cr_assert_null(a);
    /* NULL alerts do nothing. */
    sb_alert_spend(NULL, 0, 100);
    sb_alert_budget(NULL, "key", "k", 50, 1, 2);
    sb_alert_free(NULL);
}

/* ---------------------------------------------------------------------------------------------
 * From the config
 * ------------------------------------------------------------------------------------------- */
Test(alert, config_makes_the_params)
{
    struct sb_config *cfg =
        parse_ok("alerts:\n  webhook_url: http://127.0.0.1:1/h\n  webhook_timeout_ms: 2500\n"
                 "  webhook_retries: 1\n  instance: gw-a\n  queue_size: 4\n"
                 "  spend_spike: {window_s: 60, baseline_s: 3600, factor: \"2.5\", "
                 "min_usd: \"0.05\"}\n");
    struct sb_alert_params p;
    char err[256];
    cr_assert_eq(sb_alert_config_params(&cfg->alerts, &p, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(p.webhook_url, "http://127.0.0.1:1/h");
    cr_assert_eq(p.timeout_ms, 2500);
    cr_assert_eq(p.retries, 1);
    cr_assert_eq(p.backoff_ms, SB_ALERT_BACKOFF_MS);
    cr_assert_eq(p.drain_ms, SB_ALERT_DRAIN_MS);
    cr_assert_str_eq(p.instance, "gw-a");
    cr_assert_eq(p.queue_size, 4);
    cr_assert(p.spike);
    cr_assert_eq(p.spike_params.window_ms, 60000);
    cr_assert_eq(p.spike_params.baseline_ms, 3600000);
    cr_assert_eq(p.spike_params.factor_micros, 2500000);
    cr_assert_eq(p.spike_params.min_micros, 50000);
    sb_config_free(cfg);
}

Test(alert, no_section_no_alerts)
{
    struct sb_config *cfg = parse_ok("log_level: info\n");
    struct sb_alerts *a = (struct sb_alerts *)&cfg; /* overwritten */
    char err[256];
    cr_assert(!cfg->alerts.enabled);
    cr_assert_eq(sb_alert_from_config(&cfg->alerts, &a, err, sizeof err), 0);
    cr_assert_null(a);
    sb_config_free(cfg);

    cfg = parse_ok("alerts:\n  spend_spike: {enabled: false}\n");
    cr_assert(cfg->alerts.enabled, "an alerts: mapping turns them on");
    cr_assert_eq(sb_alert_from_config(&cfg->alerts, &a, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(a);
    sb_alert_spend(a, now_ms(), 1000000000); /* not watched */
    assert_stats(a, 0, 0, 0, 0);
    sb_alert_free(a);
    sb_config_free(cfg);
}
