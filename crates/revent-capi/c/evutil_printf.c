/* evutil_snprintf and evutil_vsnprintf: printf-style functions, which Rust cannot define (variadic
 * arguments and va_list are C's). Compiled into each library by build-libs.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

int evutil_vsnprintf(char *buf, size_t buflen, const char *format, va_list ap)
    __attribute__((format(printf, 3, 0)));
int evutil_snprintf(char *buf, size_t buflen, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* C99's vsnprintf, with libevent's two promises on top: a zero-sized buffer gets nothing and the
 * result is 0 (not the length the text would have), and a nonzero-sized buffer always ends with a
 * NUL, even if formatting failed. Otherwise the result is the full length of the text. */
int evutil_vsnprintf(char *buf, size_t buflen, const char *format, va_list ap)
{
    if (buflen == 0)
        return 0;
    int n = vsnprintf(buf, buflen, format, ap);
    buf[buflen - 1] = '\0';
    return n;
}

/* evutil_vsnprintf with the arguments inline. */
int evutil_snprintf(char *buf, size_t buflen, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = evutil_vsnprintf(buf, buflen, format, ap);
    va_end(ap);
    return n;
}
