/* threads.c with evthread_enable_lock_debugging(): locks check how they are taken and released. */
#define THREADS_LOCK_DEBUGGING 1
#include "threads.c"
