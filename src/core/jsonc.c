/* JSONC to JSON in place (see jsonc.h). */
#include "core/jsonc.h"

#include <errno.h>
#include <stdbool.h>

static size_t line_of(const char *text, size_t pos)
{
    size_t line = 1;
    for (size_t i = 0; i < pos; i++)
        line += text[i] == '\n';
    return line;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int jsonc_to_json(char *text, size_t len, err *e)
{
    size_t last_comma = (size_t)-1; /* a comma not yet followed by a value */
    char prev = 0;                  /* the last character outside comments and blanks */
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            size_t start = i;
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\')
                    i++;
            if (i >= len)
                return err_set(e, -EINVAL, "line %zu: unterminated string", line_of(text, start));
            last_comma = (size_t)-1;
            prev = '"';
        } else if (c == '/' && i + 1 < len && text[i + 1] == '/') {
            for (; i < len && text[i] != '\n'; i++)
                text[i] = ' ';
        } else if (c == '/' && i + 1 < len && text[i + 1] == '*') {
            size_t start = i;
            text[i] = text[i + 1] = ' ';
            for (i += 2; i + 1 < len && !(text[i] == '*' && text[i + 1] == '/'); i++)
                if (text[i] != '\n')
                    text[i] = ' ';
            if (i + 1 >= len)
                return err_set(e, -EINVAL, "line %zu: unterminated /* comment", line_of(text, start));
            text[i] = text[i + 1] = ' ';
            i++;
        } else if (c == ',') {
            /* Only a comma after a value may trail: "[,]" and "[1,,]" stay
             * errors for the JSON parser. */
            last_comma = prev == '[' || prev == '{' || prev == ',' ? (size_t)-1 : i;
            prev = c;
        } else if (c == '}' || c == ']') {
            if (last_comma != (size_t)-1)
                text[last_comma] = ' ';
            last_comma = (size_t)-1;
            prev = c;
        } else if (!is_space(c)) {
            last_comma = (size_t)-1;
            prev = c;
        }
    }
    return 0;
}
