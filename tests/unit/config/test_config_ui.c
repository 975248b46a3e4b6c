/* Unit tests for the dashboard's config section, `ui:`: its defaults, each key into its field, and
 * the errors for values out of range or keys misspelled. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config_test.h"

Test(config_ui, on_by_default_with_fifty_recent_decisions)
{
    struct sb_config *cfg = parse_ok("log_level: info\n");
    cr_expect(cfg->ui.enabled);
    cr_expect_eq(cfg->ui.recent, 50);
    sb_config_free(cfg);
}

Test(config_ui, every_key_into_its_field)
{
    struct sb_config *cfg = parse_ok("ui:\n  enabled: false\n  recent: 500\n");
    cr_expect_not(cfg->ui.enabled);
    cr_expect_eq(cfg->ui.recent, 500);
    sb_config_free(cfg);
}

Test(config_ui, bad_values_say_what_is_expected)
{
    expect_error("ui:\n  recent: 0\n", "ui.recent: expected an integer from 1 to 10000");
    expect_error("ui:\n  recent: 10001\n", "ui.recent: expected an integer from 1 to 10000");
    expect_error("ui:\n  enabled: maybe\n", "ui.enabled");
    expect_error("ui:\n  recnet: 5\n", "did you mean \"recent\"?");
}
