/* Errors as libevent reports them: bad arguments return -1/NULL and say why through the log callback;
 * misuse that libevent's debug mode treats as fatal goes through the fatal callback with
 * EVENT_ERR_ABORT_ (0xdeaddead), and the process exits when the callback returns. */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static int warnings;
static char last_msg[256];

static void on_log(int severity, const char *msg) {
    if (severity >= EVENT_LOG_WARN)
        warnings++;
    snprintf(last_msg, sizeof last_msg, "%s", msg);
}

static int fatal_pipe[2];

static void on_fatal(int err) {
    /* Report the code to the parent; the library exits the process when this returns. */
    CHECK(write(fatal_pipe[1], &err, sizeof err) == (ssize_t)sizeof err);
}

static void nothing(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
}

/* Runs `misuse` in a child and checks that it reached the fatal callback with `code` and that the
 * child then exited non-zero (the callback returned, so the library ends the process). */
static void expect_fatal(void (*misuse)(void), unsigned code) {
    CHECK(pipe(fatal_pipe) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fatal_pipe[0]);
        event_set_log_callback(on_log);
        event_set_fatal_callback(on_fatal);
        misuse();
        _exit(0); /* not reached when the misuse was caught */
    }
    close(fatal_pipe[1]);
    int err = 0, status = 0;
    CHECK(read(fatal_pipe[0], &err, sizeof err) == (ssize_t)sizeof err);
    CHECK(waitpid(pid, &status, 0) == pid);
    close(fatal_pipe[0]);
    CHECK((unsigned)err == code);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

static void add_unassigned(void) {
    event_enable_debug_mode();
    struct event_base *base = event_base_new();
    CHECK(base);
    struct event ev;
    memset(&ev, 0, sizeof ev);
    ev.ev_base = base; /* without a base, event_add only warns, in debug mode too */
    event_add(&ev, NULL);
}

/* Debug mode must come before any base or event exists: libevent calls this fatal (code 1). */
static void debug_mode_too_late(void) {
    struct event_base *base = event_base_new();
    CHECK(base);
    struct event *ev = event_new(base, -1, 0, nothing, NULL);
    CHECK(ev);
    event_enable_debug_mode();
}

int main(void) {
    /* First, while this process has created nothing (debug mode must precede every base and
     * event): adding a never-assigned event in debug mode is fatal, through the fatal callback. */
    expect_fatal(add_unassigned, 0xdeaddeadu);
    expect_fatal(debug_mode_too_late, 1);

    event_set_log_callback(on_log);

    /* An event that was never assigned (zeroed memory), outside debug mode: -1 and a warning. */
    struct event_base *base = event_base_new();
    CHECK(base);
    struct event zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    CHECK(!event_initialized(&zeroed));
    warnings = 0;
    CHECK(event_add(&zeroed, NULL) == -1);
    CHECK(warnings == 1 && last_msg[0]);

    /* A priority out of range: -1 (libevent says nothing here), the event keeps its priority. */
    CHECK(event_base_priority_init(base, 3) == 0);
    struct event *ev = event_new(base, -1, 0, nothing, NULL);
    CHECK(ev);
    CHECK(event_priority_set(ev, 3) == -1);
    CHECK(event_priority_set(ev, -1) == -1);
    CHECK(event_get_priority(ev) == 1);
    CHECK(event_priority_set(ev, 2) == 0 && event_get_priority(ev) == 2);
    /* Priorities cannot change while events are active. */
    event_active(ev, EV_TIMEOUT, 0);
    CHECK(event_base_priority_init(base, 5) == -1);
    /* The callback runs; then nothing is left, so the loop ends with 1 as libevent's does. */
    CHECK(event_base_loop(base, EVLOOP_NONBLOCK) == 1);
    event_free(ev);

    /* A configuration no backend satisfies: NULL, with a warning. */
    struct event_config *cfg = event_config_new();
    CHECK(cfg);
    event_config_avoid_method(cfg, "epoll");
    event_config_avoid_method(cfg, "io_uring");
    event_config_avoid_method(cfg, "poll");
    event_config_avoid_method(cfg, "select");
    warnings = 0;
    CHECK(event_base_new_with_config(cfg) == NULL);
    CHECK(warnings >= 1);
    event_config_free(cfg);

    /* Rejected priority counts. */
    CHECK(event_base_priority_init(base, 0) == -1);
    CHECK(event_base_priority_init(base, EVENT_MAX_PRIORITIES + 1) == -1);

    /* A loop with no events returns 1. */
    CHECK(event_base_loop(base, EVLOOP_NONBLOCK) == 1);
    event_base_free(base);
    puts("errors: ok");
    return 0;
}
