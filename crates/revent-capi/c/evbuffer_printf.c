/* evbuffer_add_printf and evbuffer_add_vprintf: variadic, so written in C (stable Rust cannot
 * define them). The text is formatted straight into the buffer's free space with vsnprintf and
 * added with evbuffer_commit_space; when it does not fit, the length from that first pass sizes a
 * second reservation (a va_copy per pass). The few prototypes needed are declared here, so this
 * file does not depend on libevent's headers. */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

struct evbuffer;
int evbuffer_reserve_space(struct evbuffer *buf, ssize_t size, struct iovec *vec, int n_vecs);
int evbuffer_commit_space(struct evbuffer *buf, struct iovec *vec, int n_vecs);
void evbuffer_lock(struct evbuffer *buf);
void evbuffer_unlock(struct evbuffer *buf);
int evbuffer_add_vprintf(struct evbuffer *buf, const char *fmt, va_list ap);
int evbuffer_add_printf(struct evbuffer *buf, const char *fmt, ...);

/* Formats into the reserved extent; the length the whole text needs, or -1. */
static int format_into(struct iovec *v, const char *fmt, va_list ap) {
    va_list aq;
    int n;
    va_copy(aq, ap);
    n = vsnprintf((char *)v->iov_base, v->iov_len, fmt, aq);
    va_end(aq);
    return n;
}

int evbuffer_add_vprintf(struct evbuffer *buf, const char *fmt, va_list ap) {
    struct iovec v;
    int n, result = -1;
    if (buf == NULL || fmt == NULL)
        return -1;
    /* The reservation and the commit must not be split by another thread's call. */
    evbuffer_lock(buf);
    if (evbuffer_reserve_space(buf, 64, &v, 1) != 1)
        goto done;
    n = format_into(&v, fmt, ap);
    if (n < 0)
        goto done;
    if ((size_t)n >= v.iov_len) {
        if (n == INT_MAX || evbuffer_reserve_space(buf, (ssize_t)n + 1, &v, 1) != 1)
            goto done;
        if (format_into(&v, fmt, ap) != n)
            goto done;
    }
    v.iov_len = (size_t)n;
    if (evbuffer_commit_space(buf, &v, 1) == 0)
        result = n;
done:
    evbuffer_unlock(buf);
    return result;
}

int evbuffer_add_printf(struct evbuffer *buf, const char *fmt, ...) {
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = evbuffer_add_vprintf(buf, fmt, ap);
    va_end(ap);
    return r;
}
