/* Unit tests for the `alerts:` section: off without it, defaults, every key into its field, and the
 * errors for a bad URL, a factor of 1 or less, a window not shorter than the baseline and
 * decimals that do not read exactly. The webhook URL is a secret and is never printed. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config_test.h"

Test(config_alerts, off_without_the_section)
{
    struct sb_config *cfg = parse_ok("log_level: info\n");
    cr_assert(!cfg->alerts.enabled);
    sb_config_free(cfg);
    cfg = parse_ok("alerts:\n");
    cr_assert(!cfg->alerts.enabled, "an empty alerts: is no section");
    sb_config_free(cfg);
}

Test(config_alerts, defaults)
{
    struct sb_config *cfg = parse_ok("alerts: {}\n");
    const struct sb_alerts_config *a = &cfg->alerts;
    cr_assert(a->enabled);
    cr_assert_null(a->webhook_url, "log only");
    cr_assert_eq(a->webhook_timeout_ms, 5000);
    cr_assert_eq(a->webhook_retries, 2);
    cr_assert_null(a->instance);
    cr_assert_eq(a->queue_size, 64);
    cr_assert(a->spend_spike.enabled);
    cr_assert_eq(a->spend_spike.window_s, 300);
    cr_assert_eq(a->spend_spike.baseline_s, 86400);
    cr_assert_str_eq(a->spend_spike.factor, "3");
    cr_assert_str_eq(a->spend_spike.min_usd, "1.00");
    sb_config_free(cfg);
}

Test(config_alerts, every_key_into_its_field)
{
    setenv("SB_TEST_HOOK", "https://hooks.example.com/services/T0/B0/secret-token", 1);
    struct sb_config *cfg = parse_ok("alerts:\n"
                                     "  webhook_url: ${SB_TEST_HOOK}\n"
                                     "  webhook_timeout_ms: 1500\n"
                                     "  webhook_retries: 0\n"
                                     "  instance: gw-eu-1\n"
                                     "  queue_size: 8\n"
                                     "  spend_spike:\n"
                                     "    enabled: false\n"
                                     "    window_s: 60\n"
                                     "    baseline_s: 3600\n"
                                     "    factor: \"1.5\"\n"
                                     "    min_usd: \"0.000001\"\n");
    const struct sb_alerts_config *a = &cfg->alerts;
    cr_assert_str_eq(a->webhook_url, "https://hooks.example.com/services/T0/B0/secret-token");
    cr_assert_eq(a->webhook_timeout_ms, 1500);
    cr_assert_eq(a->webhook_retries, 0);
    cr_assert_str_eq(a->instance, "gw-eu-1");
    cr_assert_eq(a->queue_size, 8);
    cr_assert(!a->spend_spike.enabled);
    cr_assert_eq(a->spend_spike.window_s, 60);
    cr_assert_eq(a->spend_spike.baseline_s, 3600);
    cr_assert_str_eq(a->spend_spike.factor, "1.5");
    cr_assert_str_eq(a->spend_spike.min_usd, "0.000001");

    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    sb_config_print_summary(cfg, &out);
    cr_assert_not_null(strstr(out.p, "alerts:\n  webhook_url: (set, not shown)\n"), "%s", out.p);
    cr_assert_null(strstr(out.p, "secret-token"), "the URL is a secret");
    sb_buf_free(&out);
    sb_config_free(cfg);
}

Test(config_alerts, bad_values_say_what_is_expected)
{
    expect_error("alerts:\n  webhook_url: hooks.example.com/x\n",
                 "t.yaml:2:16: alerts.webhook_url: expected an http:// or https:// URL");
    expect_error("alerts:\n  webhook_url: \"https://\"\n",
                 "alerts.webhook_url: expected an http:// or https:// URL");
    expect_error("alerts:\n  spend_spike: {factor: \"1\"}\n",
                 "alerts.spend_spike.factor: expected a factor above 1, got \"1\"");
    expect_error("alerts:\n  spend_spike: {factor: \"0.5\"}\n",
                 "alerts.spend_spike.factor: expected a factor above 1");
    expect_error("alerts:\n  spend_spike: {factor: \"three\"}\n",
                 "alerts.spend_spike.factor: expected a decimal number");
    expect_error("alerts:\n  spend_spike: {min_usd: \"0.0000001\"}\n",
                 "alerts.spend_spike.min_usd: expected a decimal number from 0 to 1000000000 "
                 "with at most 6 decimal places, got \"0.0000001\"");
    expect_error("alerts:\n  spend_spike: {window_s: 3600, baseline_s: 3600}\n",
                 "alerts.spend_spike.window_s: window_s (3600) is not less than baseline_s (3600)");
    expect_error("alerts:\n  spend_spike: {window_s: 100000}\n",
                 "window_s (100000) is not less than baseline_s (86400)");
    expect_error("alerts:\n  spend_spike: {baseline_s: 2592001}\n",
                 "alerts.spend_spike.baseline_s: expected an integer from 2 to 2592000");
    expect_error("alerts:\n  queue_size: 0\n", "alerts.queue_size: expected an integer");
    expect_error("alerts:\n  webhook_retries: 11\n",
                 "alerts.webhook_retries: expected an integer from 0 to 10");
    expect_error("alerts:\n  webhok_url: http://x\n", "did you mean \"webhook_url\"?");
}

Test(config_alerts, a_bad_url_is_not_repeated)
{
    struct sb_buf err;
    sb_buf_init(&err, 1 << 16);
    struct sb_config *cfg = NULL;
    const char *text = "alerts:\n  webhook_url: hooks.example.com/T0/secret-token\n";
    cr_assert_eq(sb_config_parse("t.yaml", text, strlen(text), NULL, &cfg, &err), SB_EINVAL);
    cr_assert_null(strstr(err.p, "secret-token"), "%s", err.p);
    sb_buf_free(&err);
}
