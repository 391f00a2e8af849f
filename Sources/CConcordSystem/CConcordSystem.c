#define _GNU_SOURCE
#include "CConcordSystem.h"
#include <errno.h>

#ifdef __linux__
#include <sched.h>

int c_concord_pin_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

int c_concord_allowed_cpus(int *cpus, int capacity) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -errno;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        if (count < capacity) cpus[count] = cpu;
        count++;
    }
    return count;
}
#else
int c_concord_pin_current_thread(int cpu) { (void)cpu; return ENOSYS; }
int c_concord_allowed_cpus(int *cpus, int capacity) { (void)cpus; (void)capacity; return -ENOSYS; }
#endif
