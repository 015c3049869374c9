//! Byte I/O syscalls for buffers (readv, writev, sendfile, pread). Filled in by the Evbuffer work.
