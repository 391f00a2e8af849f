#ifndef C_CONCORD_SYSTEM_H
#define C_CONCORD_SYSTEM_H

// Linux calls Swift's Glibc module does not expose (they need _GNU_SOURCE). Elsewhere they fail with ENOSYS.

/// Pins the calling thread to one CPU. Returns 0, or an errno value.
int c_concord_pin_current_thread(int cpu);

/// Writes up to `capacity` CPUs the calling thread may run on, ascending, into `cpus`. Returns how many there
/// are (which may exceed `capacity`), or -errno.
int c_concord_allowed_cpus(int *cpus, int capacity);

#endif
