/* Memory and files that evbuffers refer to instead of copying: evbuffer_add_reference (the cleanup
 * runs exactly once, and nothing reads the memory after it: the cleanup frees it, so valgrind sees
 * any later read), evbuffer_add_file (bytes sent from a file, the fd closed when done), file
 * segments shared by several buffers (the cleanup callback once the last one lets go). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

static int on_revent(void) {
    Dl_info info;
    CHECK(dladdr((void *)evbuffer_new, &info) != 0);
    return info.dli_fname && strstr(info.dli_fname, "revent-libs") != NULL;
}

static void check_contents(struct evbuffer *b, const char *want) {
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    CHECK(evbuffer_copyout(b, s, n) == (ev_ssize_t)n);
    s[n] = 0;
    if (strcmp(s, want) != 0) {
        fprintf(stderr, "buffer holds \"%s\", want \"%s\"\n", s, want);
        CHECK(0);
    }
    free(s);
}

static int cleanups;
static const void *cleaned;
static size_t cleaned_len;
static void *cleaned_arg;

/* Frees the memory (after scribbling over it): a later read by the buffer is a use after free. */
static void cleanup_free(const void *data, size_t len, void *arg) {
    cleanups++;
    cleaned = data;
    cleaned_len = len;
    cleaned_arg = arg;
    memset((void *)data, 'X', len);
    free((void *)data);
}

static char *heap(const char *s) {
    char *p = malloc(strlen(s));
    CHECK(p);
    memcpy(p, s, strlen(s));
    return p;
}

static void test_reference(void) {
    int tag;
    struct evbuffer *b = evbuffer_new(), *c = evbuffer_new();

    /* Drained in parts, a part moved to another buffer: one cleanup, after the last byte. */
    char *data = heap("0123456789");
    cleanups = 0;
    CHECK(evbuffer_add_reference(b, data, 10, cleanup_free, &tag) == 0);
    check_contents(b, "0123456789");
    CHECK(evbuffer_drain(b, 4) == 0);
    CHECK(cleanups == 0);
    CHECK(evbuffer_remove_buffer(b, c, 3) == 3);
    check_contents(c, "456");
    CHECK(evbuffer_drain(b, 3) == 0);
    CHECK(evbuffer_get_length(b) == 0);
    CHECK(cleanups <= 1);            /* libevent copied the moved part; revent still shares it */
    check_contents(c, "456");
    evbuffer_free(c);
    CHECK(cleanups == 1);
    CHECK(cleaned == data && cleaned_len == 10 && cleaned_arg == &tag);

    /* Freed with the buffer. */
    cleanups = 0;
    c = evbuffer_new();
    CHECK(evbuffer_add(c, "own ", 4) == 0);
    CHECK(evbuffer_add_reference(c, heap("borrowed"), 8, cleanup_free, NULL) == 0);
    check_contents(c, "own borrowed");
    evbuffer_free(c);
    CHECK(cleanups == 1);

    /* Pulled up: the bytes are copied out of the reference, which is released; the buffer keeps
     * its copy. */
    cleanups = 0;
    CHECK(evbuffer_add(b, "ab", 2) == 0);
    CHECK(evbuffer_add_reference(b, heap("cdef"), 4, cleanup_free, NULL) == 0);
    unsigned char *flat = evbuffer_pullup(b, -1);
    CHECK(flat && memcmp(flat, "abcdef", 6) == 0);
    CHECK(cleanups == 1);
    check_contents(b, "abcdef");
    evbuffer_drain(b, 6);

    /* A reference that holds the whole pullup, edited in place (programs patch a length prefix
     * this way): the buffer sees the edit. libevent hands out the reference itself, so the edit
     * also lands in the caller's memory; revent edits a copy and leaves that memory alone. */
    static char fixed[] = "??:payload";
    CHECK(evbuffer_add_reference(b, fixed, 10, NULL, NULL) == 0);
    flat = evbuffer_pullup(b, 2);
    CHECK(flat != NULL);
    memcpy(flat, "07", 2);
    check_contents(b, "07:payload");
    if (on_revent())
        CHECK(memcmp(fixed, "??", 2) == 0);
    evbuffer_drain(b, 10);

    /* Moved whole to another buffer, then written to a socket: released once written. */
    int sv[2];
    char got[16];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    cleanups = 0;
    c = evbuffer_new();
    CHECK(evbuffer_add_reference(c, heap("sent"), 4, cleanup_free, NULL) == 0);
    CHECK(evbuffer_add_buffer(b, c) == 0);
    CHECK(cleanups == 0);
    CHECK(evbuffer_write(b, sv[0]) == 4);
    CHECK(cleanups == 1);
    CHECK(read(sv[1], got, sizeof got) == 4 && memcmp(got, "sent", 4) == 0);
    close(sv[0]);
    close(sv[1]);

    /* A frozen end refuses, and the memory stays the caller's (no cleanup). */
    cleanups = 0;
    data = heap("kept");
    CHECK(evbuffer_freeze(c, 0) == 0);
    CHECK(evbuffer_add_reference(c, data, 4, cleanup_free, NULL) == -1);
    CHECK(cleanups == 0);
    CHECK(memcmp(data, "kept", 4) == 0);
    free(data);
    CHECK(evbuffer_unfreeze(c, 0) == 0);

    /* No cleanup function: static memory. */
    CHECK(evbuffer_add_reference(c, "static", 6, NULL, NULL) == 0);
    check_contents(c, "static");
    evbuffer_free(c);
    evbuffer_free(b);
}

/* A temporary file holding `text`, open for reading. */
static int temp_file(const char *text) {
    char name[] = "/tmp/revent-evbuffer-XXXXXX";
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    unlink(name);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    return fd;
}

static int fd_open(int fd) {
    return fcntl(fd, F_GETFD) != -1;
}

static const char *TEXT = "0123456789abcdefghij";

static void test_add_file(void) {
    int sv[2];
    char got[64];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);

    /* A range of a file, written to a socket; the buffer closes the fd when it is done. */
    struct evbuffer *b = evbuffer_new();
    int fd = temp_file(TEXT);
    CHECK(evbuffer_add(b, "[", 1) == 0);
    CHECK(evbuffer_add_file(b, fd, 5, 10) == 0);
    CHECK(evbuffer_add(b, "]", 1) == 0);
    CHECK(evbuffer_get_length(b) == 12);
    int total = 0;
    while (evbuffer_get_length(b) > 0) {
        int n = evbuffer_write(b, sv[0]);
        CHECK(n > 0);
        total += n;
    }
    CHECK(total == 12);
    CHECK(read(sv[1], got, sizeof got) == 12 && memcmp(got, "[56789abcde]", 12) == 0);
    CHECK(!fd_open(fd) && errno == EBADF);

    /* The whole file (-1), looked at in place. */
    fd = temp_file(TEXT);
    CHECK(evbuffer_add_file(b, fd, 0, -1) == 0);
    CHECK(evbuffer_get_length(b) == 20);
    struct evbuffer_ptr p = evbuffer_search(b, "abc", 3, NULL);
    CHECK(p.pos == 10);
    unsigned char *flat = evbuffer_pullup(b, -1);
    CHECK(flat && memcmp(flat, TEXT, 20) == 0);
    evbuffer_free(b);
    CHECK(!fd_open(fd));

    /* A frozen end refuses it. */
    b = evbuffer_new();
    fd = temp_file(TEXT);
    CHECK(evbuffer_freeze(b, 0) == 0);
    CHECK(evbuffer_add_file(b, fd, 0, 5) == -1);
    evbuffer_free(b);
    close(sv[0]);
    close(sv[1]);
    if (fd_open(fd))
        close(fd);                  /* libevent 2.1.12 leaves it open on this failure */
}

static int seg_cleanups;
static const struct evbuffer_file_segment *seg_cleaned;
static int seg_flags;
static void *seg_arg;
static void seg_cleanup(const struct evbuffer_file_segment *seg, int flags, void *arg) {
    seg_cleanups++;
    seg_cleaned = seg;
    seg_flags = flags;
    seg_arg = arg;
}

static void test_segments(void) {
    int tag;
    int fd = temp_file(TEXT);

    /* One segment in two buffers: the cleanup runs when the last reference goes. */
    struct evbuffer_file_segment *seg = evbuffer_file_segment_new(fd, 2, 10, 0);
    CHECK(seg);
    evbuffer_file_segment_add_cleanup_cb(seg, seg_cleanup, &tag);
    struct evbuffer *b1 = evbuffer_new(), *b2 = evbuffer_new();
    CHECK(evbuffer_add_file_segment(b1, seg, 0, -1) == 0);
    CHECK(evbuffer_add_file_segment(b2, seg, 3, 4) == 0);
    check_contents(b1, "23456789ab");
    check_contents(b2, "5678");
    evbuffer_file_segment_free(seg);
    CHECK(seg_cleanups == 0);
    CHECK(evbuffer_drain(b1, 10) == 0);
    CHECK(seg_cleanups == 0);
    evbuffer_free(b2);
    CHECK(seg_cleanups == 1 && seg_cleaned == seg && seg_flags == 0 && seg_arg == &tag);
    CHECK(fd_open(fd));             /* no EVBUF_FS_CLOSE_ON_FREE */
    evbuffer_free(b1);
    CHECK(seg_cleanups == 1);

    /* Read rather than mapped, whole file, and closing the fd with the segment. */
    seg_cleanups = 0;
    seg = evbuffer_file_segment_new(fd, 0, -1, EVBUF_FS_DISABLE_MMAP | EVBUF_FS_CLOSE_ON_FREE);
    CHECK(seg);
    evbuffer_file_segment_add_cleanup_cb(seg, seg_cleanup, NULL);
    b1 = evbuffer_new();
    CHECK(evbuffer_add_file_segment(b1, seg, 10, 5) == 0);
    check_contents(b1, "abcde");
    evbuffer_file_segment_free(seg);
    CHECK(fd_open(fd) && seg_cleanups == 0);
    evbuffer_free(b1);
    CHECK(!fd_open(fd));
    CHECK(seg_cleanups == 1 && seg_flags == (EVBUF_FS_DISABLE_MMAP | EVBUF_FS_CLOSE_ON_FREE));

    /* A segment never added: freeing it runs the cleanup. */
    fd = temp_file(TEXT);
    seg_cleanups = 0;
    seg = evbuffer_file_segment_new(fd, 0, 20, EVBUF_FS_CLOSE_ON_FREE);
    CHECK(seg);
    evbuffer_file_segment_add_cleanup_cb(seg, seg_cleanup, NULL);
    evbuffer_file_segment_free(seg);
    CHECK(seg_cleanups == 1 && !fd_open(fd));
}

/* Bad input libevent does not check (it would crash or accept it), and failed segment adds:
 * libevent 2.1.12 drops a reference to the segment on each failure, so it cannot be asked. */
static void test_bad_input_revent(void) {
    struct evbuffer *b = evbuffer_new();
    int fd = temp_file(TEXT);
    CHECK(evbuffer_add_reference(NULL, "x", 1, NULL, NULL) == -1);
    CHECK(evbuffer_add_reference(b, NULL, 1, NULL, NULL) == -1);
    CHECK(evbuffer_add_file(b, fd, 0, 100) == -1);   /* past the end of the file */
    CHECK(evbuffer_add_file(b, fd, 30, -1) == -1);
    CHECK(evbuffer_add_file(b, -1, 0, 1) == -1);
    CHECK(evbuffer_add_file(b, fd, -1, 1) == -1);
    CHECK(fd_open(fd));                               /* still the caller's */
    CHECK(evbuffer_file_segment_new(-1, 0, 1, 0) == NULL);
    CHECK(evbuffer_file_segment_new(fd, -2, 1, 0) == NULL);
    CHECK(evbuffer_file_segment_new(fd, 30, -1, 0) == NULL);
    CHECK(evbuffer_add_file_segment(b, NULL, 0, 1) == -1);
    seg_cleanups = 0;
    struct evbuffer_file_segment *seg = evbuffer_file_segment_new(fd, 2, 10, 0);
    CHECK(seg);
    evbuffer_file_segment_add_cleanup_cb(seg, seg_cleanup, NULL);
    CHECK(evbuffer_add_file_segment(b, seg, 5, 100) == -1);     /* past the segment */
    CHECK(evbuffer_add_file_segment(b, seg, 11, -1) == -1);
    CHECK(evbuffer_add_file_segment(b, seg, -1, 1) == -1);
    CHECK(evbuffer_freeze(b, 0) == 0);
    CHECK(evbuffer_add_file_segment(b, seg, 0, 1) == -1);
    CHECK(evbuffer_unfreeze(b, 0) == 0);
    CHECK(seg_cleanups == 0);
    CHECK(evbuffer_add_file_segment(b, seg, 0, 0) == 0);        /* empty: nothing kept */
    CHECK(evbuffer_get_length(b) == 0);
    evbuffer_file_segment_free(seg);
    CHECK(seg_cleanups == 1);
    evbuffer_file_segment_free(NULL);
    evbuffer_file_segment_add_cleanup_cb(NULL, seg_cleanup, NULL);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(evbuffer_add_file(b, sv[0], 0, 1) == -1);  /* not a regular file */
    CHECK(evbuffer_get_length(b) == 0);
    close(sv[0]);
    close(sv[1]);
    close(fd);
    evbuffer_free(b);
}

int main(void) {
    test_reference();
    test_add_file();
    test_segments();
    if (on_revent())
        test_bad_input_revent();
    return 0;
}
