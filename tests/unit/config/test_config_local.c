/* Unit tests for the config keys of local models' lifecycle and admission: `local.max_loaded` and
 * each model's load, keep_alive and queue, with their defaults and their range errors. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config_test.h"

#define MODEL_HEAD "models:\n  - name: a\n    backend: local\n    path: a.gguf\n"

Test(config_local, defaults)
{
    struct sb_config *cfg = parse_ok(MODEL_HEAD);
    cr_expect_eq(cfg->local.max_loaded, 0, "no limit unless asked");
    cr_expect_str_eq(cfg->models[0].load, "startup");
    cr_expect_eq(cfg->models[0].keep_alive, -1);
    cr_expect_eq(cfg->models[0].queue_size, 128);
    sb_config_free(cfg);
}

Test(config_local, every_key_into_its_field)
{
    struct sb_config *cfg = parse_ok("local:\n  max_loaded: 2\n" MODEL_HEAD
                                     "    load: lazy\n    keep_alive: 0\n    queue: 16\n"
                                     "  - name: b\n    backend: local\n    path: b.gguf\n"
                                     "    keep_alive: 300\n");
    cr_expect_eq(cfg->local.max_loaded, 2);
    cr_expect_str_eq(cfg->models[0].load, "lazy");
    cr_expect_eq(cfg->models[0].keep_alive, 0);
    cr_expect_eq(cfg->models[0].queue_size, 16);
    cr_expect_eq(cfg->models[1].keep_alive, 300);
    sb_config_free(cfg);
}

Test(config_local, bad_values_say_what_is_expected)
{
    expect_error(MODEL_HEAD "    load: sometimes\n",
                 "models[0].load: expected one of startup, lazy, got \"sometimes\"");
    expect_error(MODEL_HEAD "    keep_alive: -2\n", "models[0].keep_alive: expected an integer");
    expect_error(MODEL_HEAD "    keep_alive: 5m\n", "models[0].keep_alive: expected an integer");
    expect_error(MODEL_HEAD "    queue: 0\n",
                 "models[0].queue: expected an integer from 1 to 65536");
    expect_error("local:\n  max_loaded: -1\n", "local.max_loaded: expected an integer from 0");
    expect_error("local:\n  max_lodaed: 1\n", "did you mean \"max_loaded\"?");
}
