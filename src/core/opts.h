/* Command-line options as a table: each "--flag VALUE" is stored, borrowed from argv, into a
 * const char * member of the command's own options struct, and a flag a command does not take is
 * an error. The subcommands of `keys` and `models` parse their arguments with it. */
#ifndef SB_CORE_OPTS_H
#define SB_CORE_OPTS_H

#include "core/core.h"

struct sb_opt {
    const char *flag;  /* "--config" */
    size_t offset;     /* of its const char * in the options struct */
    unsigned commands; /* the commands that take it: bits of the caller's choosing */
};

/* Parses argv[0..argc) for command (one of the caller's bits), which takes exactly `positional`
 * plain arguments (the last one lands in *arg), into opts, whose flag members the caller has
 * zeroed; every value is borrowed from argv. Returns 0, or prints what is wrong and
 * "usage: switchboard USAGE" to stderr and returns SB_EINVAL. */
int sb_opts_parse(int argc, char **argv, const struct sb_opt *table, size_t n, unsigned command,
                  int positional, const char *usage, void *opts, const char **arg);

#endif
