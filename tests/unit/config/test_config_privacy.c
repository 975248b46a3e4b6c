/* Tests for the `privacy:` config section: parsing, and errors that name the line of a pattern
 * that does not compile or a detector that does not exist. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/config.h"
#include "privacy/privacy.h"

/* Parses text as t.yaml; returns the config (or NULL) and leaves the errors in *errors. */
static struct sb_config *parse(const char *text, struct sb_buf *errors)
{
    struct sb_config *cfg = NULL;
    sb_buf_init(errors, 1 << 16);
    sb_config_parse("t.yaml", text, strlen(text), NULL, &cfg, errors);
    return cfg;
}

Test(config_privacy, defaults_to_every_builtin)
{
    struct sb_buf errors;
    struct sb_config *cfg = parse("log_level: info\n", &errors);
    cr_assert_not_null(cfg, "%s", errors.p);
    cr_expect_eq(cfg->privacy.n_detectors, 0);
    cr_expect_eq(cfg->privacy.n_custom_terms, 0);
    cr_expect_eq(cfg->privacy.n_custom_patterns, 0);
    sb_config_free(cfg);
    sb_buf_free(&errors);
}

Test(config_privacy, parses_terms_patterns_and_detectors)
{
    struct sb_buf errors;
    struct sb_config *cfg = parse("privacy:\n"
                                  "  custom_terms: [Falcon, \"acme corp\"]\n"
                                  "  detectors: [email, card]\n"
                                  "  custom_patterns:\n"
                                  "    - name: customer_id\n"
                                  "      regex: 'CUST-[0-9]{6}'\n",
                                  &errors);
    cr_assert_not_null(cfg, "%s", errors.p);
    const struct sb_privacy_config *pc = &cfg->privacy;
    cr_assert_eq(pc->n_custom_terms, 2);
    cr_expect_str_eq(pc->custom_terms[1], "acme corp");
    cr_assert_eq(pc->n_detectors, 2);
    cr_expect_str_eq(pc->detectors[1], "card");
    cr_assert_eq(pc->n_custom_patterns, 1);
    cr_expect_str_eq(pc->custom_patterns[0].name, "customer_id");
    cr_expect_str_eq(pc->custom_patterns[0].regex, "CUST-[0-9]{6}");
    cr_expect_eq(pc->custom_patterns[0].line, 5);

    /* What the parser accepts, the scanner compiles. */
    struct sb_privacy *p = NULL;
    char err[256];
    cr_assert_eq(sb_privacy_new(pc, &p, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(sb_privacy_kind_tag(p, SB_PII_CUSTOM), "CUSTOMER_ID");
    sb_privacy_free(p);
    sb_config_free(cfg);
    sb_buf_free(&errors);
}

Test(config_privacy, a_pattern_that_does_not_compile_is_named_with_its_line)
{
    struct sb_buf errors;
    struct sb_config *cfg = parse("privacy:\n"
                                  "  custom_patterns:\n"
                                  "    - name: ok\n"
                                  "      regex: 'a+'\n"
                                  "    - name: broken\n"
                                  "      regex: '(unclosed'\n"
                                  "    - name: backref\n"
                                  "      regex: '(a)\\1'\n",
                                  &errors);
    cr_assert_null(cfg);
    cr_expect(strstr(errors.p, "t.yaml:6:14: privacy.custom_patterns[1].regex: the pattern does "
                               "not compile") != NULL,
              "%s", errors.p);
    cr_expect(strstr(errors.p, "t.yaml:8:14: privacy.custom_patterns[2].regex:") != NULL, "%s",
              errors.p);
    cr_expect(strstr(errors.p, "custom_patterns[0]") == NULL, "%s", errors.p);
    sb_buf_free(&errors);
}

Test(config_privacy, unknown_detector_gets_a_suggestion)
{
    struct sb_buf errors;
    struct sb_config *cfg = parse("privacy:\n  detectors: [emial]\n", &errors);
    cr_assert_null(cfg);
    cr_expect(strstr(errors.p, "t.yaml:2:14: privacy.detectors: privacy.detectors[0]: unknown "
                               "detector \"emial\"; did you mean \"email\"?") != NULL,
              "%s", errors.p);
    sb_buf_free(&errors);
}

Test(config_privacy, none_must_stand_alone)
{
    struct sb_buf errors;
    struct sb_config *cfg = parse("privacy:\n  detectors: [none]\n", &errors);
    cr_assert_not_null(cfg, "%s", errors.p);
    sb_config_free(cfg);
    sb_buf_free(&errors);
    cfg = parse("privacy:\n  detectors: [none, email]\n", &errors);
    cr_assert_null(cfg);
    cr_expect(strstr(errors.p, "must be the only entry") != NULL, "%s", errors.p);
    sb_buf_free(&errors);
}

Test(config_privacy, bad_names_and_terms)
{
    struct sb_buf errors;
    struct sb_config *cfg = parse("privacy:\n"
                                  "  custom_terms: [\"\"]\n"
                                  "  custom_patterns:\n"
                                  "    - {name: '1bad', regex: x}\n"
                                  "    - {name: email, regex: y}\n"
                                  "    - {name: Order, regex: z}\n"
                                  "    - {name: order, regex: w}\n"
                                  "    - {name: order, regex: v}\n",
                                  &errors);
    cr_assert_null(cfg);
    cr_expect(strstr(errors.p, "custom_terms[0]: expected 1 to 256 bytes") != NULL, "%s", errors.p);
    cr_expect(strstr(errors.p, "got \"1bad\"") != NULL, "%s", errors.p);
    cr_expect(strstr(errors.p, "\"email\" is a built-in kind") != NULL, "%s", errors.p);
    cr_expect(strstr(errors.p, "make the same placeholder tag") != NULL, "%s", errors.p);
    cr_expect(strstr(errors.p, "expected each name once") != NULL, "%s", errors.p);
    sb_buf_free(&errors);
}
