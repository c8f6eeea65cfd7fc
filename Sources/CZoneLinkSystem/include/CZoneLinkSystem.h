#ifndef ZONELINK_SYSTEM_H
#define ZONELINK_SYSTEM_H
// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE):
// batched datagram I/O for the DNS listeners, and network namespaces for the gateway.
#include <sys/socket.h>
#include <netinet/in.h>

// struct mmsghdr, which <sys/socket.h> declares only under _GNU_SOURCE; same layout.
struct zl_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

int zl_recvmmsg(int fd, struct zl_mmsghdr *messages, unsigned int count, int flags);
int zl_sendmmsg(int fd, struct zl_mmsghdr *messages, unsigned int count, int flags);

/// Moves the calling thread into the network namespace open at `fd` (setns with CLONE_NEWNET).
int zl_enter_network_namespace(int fd);

/// Names the calling thread (15 characters at most), as top(1) and /proc show it.
void zl_set_thread_name(const char *name);

#endif
