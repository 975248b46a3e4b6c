/* Command-line options as a table (see opts.h). */
#include <stdio.h>
#include <string.h>

#include "core/opts.h"

int sb_opts_parse(int argc, char **argv, const struct sb_opt *table, size_t n, unsigned command,
                  int positional, const char *usage, void *opts, const char **arg)
{
    int plain = 0;

    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) {
            if (plain++ >= positional) {
                fprintf(stderr, "switchboard: unexpected argument \"%s\"\n", argv[i]);
                goto fail;
            }
            *arg = argv[i];
            continue;
        }
        size_t k = 0;
        while (k < n && strcmp(table[k].flag, argv[i]) != 0)
            k++;
        if (k == n || !(table[k].commands & command)) {
            fprintf(stderr, "switchboard: unknown option \"%s\"\n", argv[i]);
            goto fail;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "switchboard: %s needs a value\n", argv[i]);
            goto fail;
        }
        *(const char **)((char *)opts + table[k].offset) = argv[++i];
    }
    if (plain < positional)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "usage: switchboard %s\n", usage);
    return SB_EINVAL;
}
