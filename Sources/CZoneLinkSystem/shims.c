#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
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
