//! `Evbuffer`: libevent's chained byte buffer.
