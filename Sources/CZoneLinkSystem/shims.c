#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include "CZoneLinkSystem.h"

_Static_assert(sizeof(struct zl_mmsghdr) == sizeof(struct mmsghdr), "zl_mmsghdr must match mmsghdr");

int zl_recvmmsg(int fd, struct zl_mmsghdr *messages, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int zl_sendmmsg(int fd, struct zl_mmsghdr *messages, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}

int zl_enter_network_namespace(int fd) {
    return setns(fd, CLONE_NEWNET);
}

void zl_set_thread_name(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

int zl_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int zl_epoll_add(int epoll, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event = { .events = events, .data = { .u64 = token } };
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

int zl_epoll_modify(int epoll, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event = { .events = events, .data = { .u64 = token } };
    return epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event);
}

int zl_epoll_delete(int epoll, int fd) {
    return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
}

int zl_epoll_wait(int epoll, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(epoll, ready, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return count;
}

const uint32_t zl_epollin = EPOLLIN, zl_epollout = EPOLLOUT, zl_epollrdhup = EPOLLRDHUP, zl_epollerr = EPOLLERR,
    zl_epollhup = EPOLLHUP, zl_epollet = EPOLLET, zl_epollexclusive = EPOLLEXCLUSIVE;

int zl_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int zl_accept(int fd, struct sockaddr_in *peer) {
    socklen_t length = sizeof(*peer);
    return accept4(fd, (struct sockaddr *)peer, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int zl_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}
