/* ${ENV_VAR} expansion in configuration values, so secrets and ports can come from the
 * environment instead of the file. */
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

/* Environment names as POSIX shells accept them: a letter or '_', then letters, digits, '_'. */
static bool is_name_char(char c, bool first)
{
    if (c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return true;
    return !first && c >= '0' && c <= '9';
}

int sb__config_expand_env(struct sb_str in, struct sb_buf *out, struct sb_buf *why)
{
    int rc = 0;
    char *name = NULL;
    size_t i = 0;
    while (i < in.len) {
        const char *dollar = memchr(in.p + i, '$', in.len - i);
        size_t run = dollar != NULL ? (size_t)(dollar - (in.p + i)) : in.len - i;
        rc = sb_buf_append(out, in.p + i, run);
        if (rc != 0)
            goto fail;
        i += run;
        if (i == in.len)
            break;
        /* in.p[i] is '$'. Only "$$" and "${" mean something; a lone '$' stays, so values such as
         * passwords need no escaping unless they contain one of those pairs. */
        char next = i + 1 < in.len ? in.p[i + 1] : '\0';
        if (next != '{') {
            rc = sb_buf_append_char(out, '$');
            if (rc != 0)
                goto fail;
            i += next == '$' ? 2 : 1;
            continue;
        }
        size_t start = i + 2, end = start;
        while (end < in.len && is_name_char(in.p[end], end == start))
            end++;
        size_t name_len = end - start;
        bool has_default = end + 1 < in.len && in.p[end] == ':' && in.p[end + 1] == '-';
        const char *def = NULL;
        size_t def_len = 0, close = end;
        if (has_default) {
            def = in.p + end + 2;
            const char *brace = memchr(def, '}', in.len - (end + 2));
            close = brace != NULL ? (size_t)(brace - in.p) : in.len;
            def_len = brace != NULL ? (size_t)(brace - def) : 0;
        }
        if (name_len == 0 || close >= in.len || in.p[close] != '}') {
            /* Quote at most the rest of the reference, so a long value does not flood the line. */
            size_t shown = SB_MIN(in.len - i, (size_t)40);
            sb_buf_printf(why,
                          "malformed variable reference \"%.*s\"; expected ${NAME} or "
                          "${NAME:-default} (NAME: letters, digits, _), or $$ for a literal $",
                          (int)shown, in.p + i);
            rc = SB_EINVAL;
            goto fail;
        }
        name = strndup(in.p + start, name_len);
        if (name == NULL) {
            rc = SB_ENOMEM;
            goto fail;
        }
        const char *value = getenv(name);
        if (has_default && (value == NULL || value[0] == '\0')) {
            rc = sb_buf_append(out, def, def_len);
        } else if (value != NULL) {
            rc = sb_buf_append_c(out, value);
        } else {
            sb_buf_printf(why,
                          "environment variable %s is not set; set it, or give a default with "
                          "${%s:-VALUE}",
                          name, name);
            rc = SB_EINVAL;
        }
        if (rc != 0)
            goto fail;
        free(name);
        name = NULL;
        i = close + 1;
    }
    return 0;

fail:
    free(name);
    return rc;
}
