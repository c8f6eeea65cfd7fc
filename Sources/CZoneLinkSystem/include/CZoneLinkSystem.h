#ifndef ZONELINK_SYSTEM_H
#define ZONELINK_SYSTEM_H
// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE):
// batched datagram I/O for the DNS listeners, network namespaces for the gateway, and the
// epoll, eventfd and accept4 calls of the gateway's TCP relay and its BPF splicing; closing
// inherited descriptors in spawned children.
#include <malloc.h>  // malloc_trim: freed heap pages back to the system after a reload
#include <spawn.h>
#include <stdint.h>
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

/// epoll_create1(EPOLL_CLOEXEC).
int zl_epoll_create(void);
/// epoll_ctl(EPOLL_CTL_ADD) with `events` and `token` as the event's data. (struct epoll_event
/// is packed on x86_64 and its data a union: plain values keep Swift clear of both.)
int zl_epoll_add(int epoll, int fd, uint32_t events, uint64_t token);
/// epoll_ctl(EPOLL_CTL_MOD): new events for a watched descriptor, same kind of token.
int zl_epoll_modify(int epoll, int fd, uint32_t events, uint64_t token);
int zl_epoll_delete(int epoll, int fd);
/// epoll_wait into two parallel arrays: each ready descriptor's token and its events.
int zl_epoll_wait(int epoll, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms);

/// The event bits the relay uses, and EPOLLEXCLUSIVE (one waiter woken per new connection).
extern const uint32_t zl_epollin, zl_epollout, zl_epollrdhup, zl_epollerr, zl_epollhup, zl_epollet, zl_epollexclusive;

/// A non-blocking, close-on-exec eventfd, for waking a thread blocked in epoll_wait.
int zl_eventfd(void);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC: the peer's IPv4 address in `peer`.
int zl_accept(int fd, struct sockaddr_in *peer);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): the child closes every descriptor
/// from `from` up before it runs, whether or not it was opened close-on-exec.
int zl_spawn_close_from(posix_spawn_file_actions_t *actions, int from);

/// Splicing (splice.c): two BPF sockhashes of `entries` sockets each, keyed by socket cookie,
/// and a stream-verdict program on the second that redirects the bytes a socket receives to the
/// socket stored under its cookie in the first. 0, or -errno (the verifier's words in `log`).
int zl_splice_open(int *targets, int *verdicts, unsigned entries, char *log, unsigned log_size);
/// Stores socket `fd` under `cookie` in a sockhash; 0 or -errno.
int zl_sockhash_put(int map, uint64_t cookie, int fd);
int zl_sockhash_delete(int map, uint64_t cookie);
/// getsockopt(SO_COOKIE): the socket's cookie, unique on the host while it is open.
int zl_socket_cookie(int fd, uint64_t *cookie);
/// From TCP_INFO: the bytes this socket received (its FIN counts one) and the bytes written to
/// it (sent or still queued; retransmissions once); either may be NULL. 0, or -1 with errno.
int zl_tcp_counts(int fd, uint64_t *received, uint64_t *written);

#endif
