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

#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

int c_concord_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int c_concord_epoll_control(int epoll, int fd, int operation, uint32_t events, uint64_t data) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epoll, operation == 2 ? EPOLL_CTL_DEL : operation == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event);
}

void *c_concord_epoll_events_allocate(int count) { return calloc((size_t)count, sizeof(struct epoll_event)); }
void c_concord_epoll_events_free(void *events) { free(events); }

int c_concord_epoll_wait(int epoll, void *events, int count, int timeoutMilliseconds) {
    return epoll_wait(epoll, (struct epoll_event *)events, count, timeoutMilliseconds);
}

uint32_t c_concord_epoll_event_flags(const void *events, int index) { return ((const struct epoll_event *)events)[index].events; }
uint64_t c_concord_epoll_event_data(const void *events, int index) { return ((const struct epoll_event *)events)[index].data.u64; }

int c_concord_accept(int listener, struct sockaddr_storage *address, socklen_t *length) {
    return accept4(listener, (struct sockaddr *)address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int c_concord_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int64_t c_concord_coarse_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}
#else
int c_concord_pin_current_thread(int cpu) { (void)cpu; return ENOSYS; }
int c_concord_allowed_cpus(int *cpus, int capacity) { (void)cpus; (void)capacity; return -ENOSYS; }
#endif
#ifndef __linux__
int c_concord_epoll_create(void) { errno = ENOSYS; return -1; }
int c_concord_epoll_control(int epoll, int fd, int operation, uint32_t events, uint64_t data) { (void)epoll; (void)fd; (void)operation; (void)events; (void)data; errno = ENOSYS; return -1; }
void *c_concord_epoll_events_allocate(int count) { (void)count; return 0; }
void c_concord_epoll_events_free(void *events) { (void)events; }
int c_concord_epoll_wait(int epoll, void *events, int count, int timeoutMilliseconds) { (void)epoll; (void)events; (void)count; (void)timeoutMilliseconds; errno = ENOSYS; return -1; }
uint32_t c_concord_epoll_event_flags(const void *events, int index) { (void)events; (void)index; return 0; }
uint64_t c_concord_epoll_event_data(const void *events, int index) { (void)events; (void)index; return 0; }
int c_concord_accept(int listener, struct sockaddr_storage *address, socklen_t *length) { (void)listener; (void)address; (void)length; errno = ENOSYS; return -1; }
int c_concord_eventfd(void) { errno = ENOSYS; return -1; }
int64_t c_concord_coarse_now(void) { return 0; }
#endif

int c_concord_malloc_trim(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}
