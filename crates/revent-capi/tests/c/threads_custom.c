/* threads.c with the program's own lock callbacks (not recursive, counted), no condition callbacks
 * and an id callback: see threads.c's header. */
#define THREADS_CUSTOM_LOCKS 1
#include "threads.c"
