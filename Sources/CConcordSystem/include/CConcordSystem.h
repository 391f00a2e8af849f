#ifndef C_CONCORD_SYSTEM_H
#define C_CONCORD_SYSTEM_H

// Linux calls Swift's Glibc module does not expose (they need _GNU_SOURCE). Elsewhere they fail with ENOSYS.

/// Pins the calling thread to one CPU. Returns 0, or an errno value.
int c_concord_pin_current_thread(int cpu);

/// Writes up to `capacity` CPUs the calling thread may run on, ascending, into `cpus`. Returns how many there
/// are (which may exceed `capacity`), or -errno.
int c_concord_allowed_cpus(int *cpus, int capacity);

#include <stdint.h>
#include <sys/socket.h>

/// epoll for the proxy's direct TCP forwarding loops. `struct epoll_event` is packed on x86-64, which Swift does
/// not import faithfully: the loops keep an array of them behind an opaque pointer and read it through these.
int c_concord_epoll_create(void);
/// EPOLL_CTL_ADD (`operation` 0), EPOLL_CTL_MOD (1) or EPOLL_CTL_DEL (2) of `fd` with `events` and `data`.
/// Returns 0, or -1 and errno.
int c_concord_epoll_control(int epoll, int fd, int operation, uint32_t events, uint64_t data);
void *c_concord_epoll_events_allocate(int count);
void c_concord_epoll_events_free(void *events);
int c_concord_epoll_wait(int epoll, void *events, int count, int timeoutMilliseconds);
uint32_t c_concord_epoll_event_flags(const void *events, int index);
uint64_t c_concord_epoll_event_data(const void *events, int index);
/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
int c_concord_accept(int listener, struct sockaddr_storage *address, socklen_t *length);
/// A non-blocking, close-on-exec eventfd.
int c_concord_eventfd(void);
/// The coarse monotonic clock in nanoseconds (a vDSO read; a few milliseconds of resolution).
int64_t c_concord_coarse_now(void);
/// glibc's malloc_trim(0): returns the free memory of every malloc arena to the system (freed blocks below the mmap
/// threshold stay in the process otherwise). Returns whether any was returned; 0 where there is no such call.
int c_concord_malloc_trim(void);

#endif
