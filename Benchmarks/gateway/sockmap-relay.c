/*
 * sockmap-relay: the gateway benchmark's two reference relays, to bound what a TCP relay can
 * save against HAProxy (issue 13's last goal). Not ZoneLink: no NAT table, no attribution, no
 * limits; one thread, one core, the smallest relay of each kind.
 *
 *   sockmap-relay copy|sockmap LISTEN_ADDR:PORT=BACKEND:PORT[,BACKEND:PORT...] [...]
 *
 * copy     epoll (edge-triggered), read() and send() of every byte, as ZoneLink's relay does:
 *          accept batching, TCP_NODELAY inherited from the listener, the last bytes before a
 *          FIN sent with MSG_MORE, no read that returns 0 after EPOLLRDHUP, shutdown of the
 *          first direction to end, close when the second one ends.
 * sockmap  user space accepts, connects and then puts both sockets of the flow into a
 *          BPF_MAP_TYPE_SOCKHASH whose stream-verdict program redirects every byte a socket
 *          receives to its peer's egress (bpf_sk_redirect_hash). The bytes never come up to
 *          user space. The program is 22 instructions written out below and loaded with the
 *          bpf() syscall: no compiler, no libbpf.
 *
 * The sockmap relay has to get these right, which the copy relay gets for free (README.md,
 * "A sockmap relay", says what each costs):
 *  - Bytes that arrived before the sockets entered the map sit in the receive queue and nothing
 *    runs the verdict on them until more bytes arrive. After the insertion, setting SO_RCVLOWAT
 *    (to its default, 1) makes TCP call the socket's data-ready callback, which is the
 *    verdict's now: the queued bytes go through the program in order.
 *  - A socket runs the verdict as soon as it is in the map the program is attached to, so its
 *    peer must already be a target: two sockhashes (see map_fd below).
 *  - A socket whose FIN is already in (CLOSE_WAIT) cannot join a map: its input is copied.
 *  - A segment with a FIN and no bytes reaches the verdict too: the program drops it.
 *  - The verdict does not send: it queues the bytes on the peer's psock, whose work item (a
 *    kworker on the core that received the bytes) sends them. When a FIN arrives, bytes redirected just before it
 *    may still be in that queue, and a shutdown() of the peer then would lose them. So a FIN
 *    is forwarded only when the peer has queued every byte this socket received:
 *    tcp_info.bytes_received of the socket == bytes_sent - bytes_retrans + notsent_bytes of
 *    the peer (the bytes written to the peer; no byte of the flow is ever written by user
 *    space), bytes_received counting the FIN as one more. Until then the flow waits on a list that is checked at every wake-up, with epoll
 *    timeouts of 1 ms while it is not empty.
 *  - The kworker's CPU time is not the process's, and it runs on whichever core received the
 *    bytes (on loopback, the sender's): a benchmark must sample every core (PERF mode).
 *
 * On SIGTERM or SIGINT it prints its counters to stderr and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/tcp.h>     /* its tcp_info has the byte counters */
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "reference-relay.h"

#define ACCEPT_BATCH 64
#define READ_SIZE (256 * 1024)
#define MAP_ENTRIES 65536

enum mode { COPY, SOCKMAP };
static enum mode mode;

struct flow;
/* One socket of a flow: epoll's data.ptr points here (listeners have their own tag). */
struct end {
    int kind;               /* 0: end of a flow, 1: listener */
    int fd;
    int side;               /* 0: client, 1: backend */
    struct flow *flow;
};

struct flow {
    struct end end[2];
    int connected;
    int input_ended[2];     /* a FIN (or read of 0) arrived on side i */
    int rdhup[2];           /* epoll reported EPOLLRDHUP on side i */
    int forwarded[2];       /* side i's end of input has been passed on to its peer */
    char *left[2];          /* copy: bytes read from side i that its peer did not take yet */
    size_t left_off[2], left_len[2];
    uint32_t key[2][4];     /* sockmap: side i's tuple as the verdict program reads it */
    int waiting;            /* sockmap: on the list of flows waiting to forward a FIN */
    struct flow *next_waiting;
    int copied[2];          /* side i's input moves by read() and send(): mode copy, or sockmap when it could not join */
    int closed;             /* closed in this batch of events; freed after it */
    struct flow *next_closed;
};

/* Two sockhashes. map_fd: a socket's peer under the socket's own tuple, the redirect target;
 * no program. verdict_map_fd: every relayed socket, under its own tuple; the verdict program is
 * attached to this one, so a socket's bytes go through the program only once it is here. A
 * socket enters the second map only after both sockets of its flow are in the first: no byte
 * ever finds its peer missing (with one map, the bytes of whichever socket went in first
 * would stay with it). */
static int epfd, map_fd = -1, verdict_map_fd = -1;
static struct listener listeners[MAX_LISTENERS];
static int listener_count;
static struct end listener_ends[MAX_LISTENERS];
static struct flow *waiting_flows, *closed_flows;
static char buffer[READ_SIZE];
static volatile sig_atomic_t stop;
static unsigned long long flows_opened, flows_closed, wakeups, fin_waits, fin_rechecks, connect_failures, copied_flows, half_copied;

static void die(const char *what) { perror(what); exit(1); }
static void on_signal(int sig) { (void)sig; stop = 1; }

/* ---- BPF: the sockhash and the verdict program. */

static long bpf(int cmd, union bpf_attr *attr) { return syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

static void load_bpf(void) {
    union bpf_attr attr;
    for (int m = 0; m < 2; m++) {
        memset(&attr, 0, sizeof attr);
        attr.map_type = BPF_MAP_TYPE_SOCKHASH;
        attr.key_size = 16;             /* remote_ip4, local_ip4, remote_port, local_port */
        attr.value_size = 4;            /* a socket's fd, on update */
        attr.max_entries = MAP_ENTRIES;
        int fd = (int)bpf(BPF_MAP_CREATE, &attr);
        if (fd < 0) die("bpf(BPF_MAP_CREATE, sockhash)");
        if (m == 0) map_fd = fd; else verdict_map_fd = fd;
    }

    /* r6 = ctx; key on the stack at r10-16 from the socket's own tuple, in __sk_buff's form;
     * bpf_sk_redirect_hash(ctx, map, &key, 0): egress of the socket stored under this key,
     * which is the peer. Return SK_PASS: with a redirect set it redirects; without one (the
     * peer has left the map) the bytes stay with this socket. */
    struct bpf_insn prog[] = {
        /* A segment with a FIN and no bytes comes through the verdict too. Redirected, the
         * peer's work item would "send" 0 bytes, take that for a broken pipe, stop the peer's
         * redirects and set EPIPE on it. It carries nothing (TCP has noted the FIN): drop it. */
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, offsetof(struct __sk_buff, len), 0),
        INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 2, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, SK_DROP),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 6, offsetof(struct __sk_buff, remote_ip4), 0),
        INSN(BPF_STX | BPF_MEM | BPF_W, 10, 2, -16, 0),
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 6, offsetof(struct __sk_buff, local_ip4), 0),
        INSN(BPF_STX | BPF_MEM | BPF_W, 10, 2, -12, 0),
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 6, offsetof(struct __sk_buff, remote_port), 0),
        INSN(BPF_STX | BPF_MEM | BPF_W, 10, 2, -8, 0),
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 6, offsetof(struct __sk_buff, local_port), 0),
        INSN(BPF_STX | BPF_MEM | BPF_W, 10, 2, -4, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0),
        INSN(BPF_LD | BPF_DW | BPF_IMM, 2, BPF_PSEUDO_MAP_FD, 0, map_fd),
        INSN(0, 0, 0, 0, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 10, 0, 0),
        INSN(BPF_ALU64 | BPF_ADD | BPF_K, 3, 0, 0, -16),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, 0),
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_redirect_hash),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, SK_PASS),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    static char log[65536];
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SK_SKB;
    attr.insns = (uintptr_t)prog;
    attr.insn_cnt = sizeof prog / sizeof prog[0];
    attr.license = (uintptr_t)"GPL";
    attr.log_buf = (uintptr_t)log;
    attr.log_size = sizeof log;
    attr.log_level = 1;
    int prog_fd = bpf(BPF_PROG_LOAD, &attr);
    if (prog_fd < 0) { fprintf(stderr, "verifier: %s\n", log); die("bpf(BPF_PROG_LOAD, sk_skb)"); }

    memset(&attr, 0, sizeof attr);
    attr.target_fd = verdict_map_fd;
    attr.attach_bpf_fd = prog_fd;
    attr.attach_type = BPF_SK_SKB_STREAM_VERDICT;
    if (bpf(BPF_PROG_ATTACH, &attr) < 0) die("bpf(BPF_PROG_ATTACH, stream verdict)");
}

/* The tuple of a socket as its own verdict program reads it from __sk_buff: addresses in
 * network order, remote_port the big-endian port in the upper 16 bits (on little-endian
 * machines), local_port in host order. */
static void tuple_key(uint32_t key[4], const struct sockaddr_in *local, const struct sockaddr_in *remote) {
    key[0] = remote->sin_addr.s_addr;
    key[1] = local->sin_addr.s_addr;
    key[2] = (uint32_t)remote->sin_port << 16;
    key[3] = ntohs(local->sin_port);
}

/* Stores socket fd under key in a sockhash. */
static int sockhash_put(int map, const uint32_t key[4], int fd) {
    union bpf_attr attr;
    uint32_t value = (uint32_t)fd;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = map;
    attr.key = (uintptr_t)key;
    attr.value = (uintptr_t)&value;
    attr.flags = BPF_ANY;
    return (int)bpf(BPF_MAP_UPDATE_ELEM, &attr);
}

static void sockhash_delete(int map, const uint32_t key[4]) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = map;
    attr.key = (uintptr_t)key;
    bpf(BPF_MAP_DELETE_ELEM, &attr);
}

/* ---- Flows. */

/* Closes both sockets now; the memory goes after the batch of events, which may still
 * name the flow. */
static void close_flow(struct flow *f) {
    for (int i = 0; i < 2; i++) close(f->end[i].fd);  /* also leaves the sockhash */
    if (f->waiting) {                                 /* unlink from the waiting list */
        for (struct flow **p = &waiting_flows; *p; p = &(*p)->next_waiting)
            if (*p == f) { *p = f->next_waiting; break; }
    }
    flows_closed++;
    f->closed = 1;
    f->next_closed = closed_flows;
    closed_flows = f;
}

/* Side `from`'s input has ended and its peer has everything: pass the end on. The second
 * direction to end ends the flow, and close() sends that FIN. Returns 1 if the flow is gone. */
static int forward_end(struct flow *f, int from) {
    f->forwarded[from] = 1;
    if (f->forwarded[!from]) { close_flow(f); return 1; }
    shutdown(f->end[!from].fd, SHUT_WR);
    return 0;
}

static int tcp_info_of(int fd, struct tcp_info *info) {
    socklen_t len = sizeof *info;
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len);
}

/* sockmap: has the peer of side `from` queued every byte side `from` received? */
static int peer_has_all(struct flow *f, int from) {
    struct tcp_info in, out;
    if (tcp_info_of(f->end[from].fd, &in) < 0 || tcp_info_of(f->end[!from].fd, &out) < 0) return 1;
    /* bytes_received counts the FIN too (it advances rcv_nxt by one); bytes_sent counts data
     * only, retransmissions included; notsent_bytes is written but not yet sent. */
    uint64_t written = out.tcpi_bytes_sent - out.tcpi_bytes_retrans + out.tcpi_notsent_bytes;
    return written + 1 >= in.tcpi_bytes_received;
}

/* sockmap: forward every ended input whose bytes the peer has all queued; keep the flow on
 * the waiting list while one is still in flight. Returns 1 if the flow is gone. */
static int settle_sockmap(struct flow *f) {
    if (!f->connected) return 0;
    for (int side = 0; side < 2; side++) {
        if (f->copied[side] || !f->input_ended[side] || f->forwarded[side]) continue;
        if (!peer_has_all(f, side)) {
            if (!f->waiting) { f->waiting = 1; f->next_waiting = waiting_flows; waiting_flows = f; fin_waits++; }
            return 0;
        }
        if (forward_end(f, side)) return 1;
    }
    return 0;
}

/* copy: move what side `from` has to its peer until one of them would block. Returns 1 if the
 * flow is gone. */
static int pump(struct flow *f, int from) {
    int in = f->end[from].fd, out = f->end[!from].fd;
    if (f->forwarded[from]) return 0;
    for (;;) {
        if (f->left_len[from]) {
            ssize_t n = send(out, f->left[from] + f->left_off[from], f->left_len[from], MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN) return 0;
                close_flow(f); return 1;
            }
            f->left_off[from] += n; f->left_len[from] -= n;
            if (f->left_len[from]) return 0;
        }
        if (f->input_ended[from]) return forward_end(f, from);
        ssize_t n = read(in, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EAGAIN) return 0;
            close_flow(f); return 1;
        }
        if (n == 0) { f->input_ended[from] = 1; continue; }
        /* A short read after EPOLLRDHUP took the last byte: send it with the FIN. */
        int last = (size_t)n < sizeof buffer && f->rdhup[from];
        if (last) f->input_ended[from] = 1;
        ssize_t sent = send(out, buffer, n, MSG_NOSIGNAL | (last ? MSG_MORE : 0));
        if (sent < 0) {
            if (errno != EAGAIN) { close_flow(f); return 1; }
            sent = 0;
        }
        if (sent < n) {
            if (!f->left[from] && !(f->left[from] = malloc(READ_SIZE))) die("malloc");
            memcpy(f->left[from], buffer + sent, n - sent);
            f->left_off[from] = 0; f->left_len[from] = n - sent;
            return 0;
        }
        if (last) return forward_end(f, from);
        if ((size_t)n < sizeof buffer) return 0;        /* drained: wait for the next edge */
    }
}

/* sockmap: side `side`'s input is moved by read() and send() from now on, as in `copy`. */
static int copy_input(struct flow *f, int side) {
    f->copied[side] = 1;
    f->input_ended[side] = 0;                 /* a FIN seen so far: pump reads up to it first */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &f->end[side]};
    epoll_ctl(epfd, EPOLL_CTL_MOD, f->end[side].fd, &ev);
    /* The peer: EPOLLOUT for what it could not take at once (EPOLLIN only if copied too). */
    ev = (struct epoll_event){.events = (f->copied[!side] ? EPOLLIN : 0) | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                              .data.ptr = &f->end[!side]};
    epoll_ctl(epfd, EPOLL_CTL_MOD, f->end[!side].fd, &ev);
    return pump(f, side);
}

/* sockmap: a flow whose sockets cannot be targets is copied through user space, like `copy`. */
static int copy_instead(struct flow *f, int error) {
    if (error != EOPNOTSUPP) fprintf(stderr, "bpf(BPF_MAP_UPDATE_ELEM): %s; copying the flow\n", strerror(error));
    copied_flows++;
    return copy_input(f, 0) || copy_input(f, 1);
}

/* The backend's connect completed: start relaying. */
static int start_flow(struct flow *f) {
    f->connected = 1;
    /* copy: the client's bytes may have come before; the backend's will come with an edge. */
    if (mode == COPY) return pump(f, 0);
    /* Targets first (key: a socket's tuple, value: its peer), then the verdict. A socket that
     * is no longer ESTABLISHED (its FIN is in: CLOSE_WAIT) cannot join a map. */
    if (sockhash_put(map_fd, f->key[1], f->end[0].fd) < 0) return copy_instead(f, errno);
    if (sockhash_put(map_fd, f->key[0], f->end[1].fd) < 0) {
        int error = errno;
        sockhash_delete(map_fd, f->key[1]);
        return copy_instead(f, error);
    }
    /* The verdict, backend first: a backend speaks once the client's bytes reach it, and the
     * client's bytes go through the verdict only once the client joins. A socket that cannot
     * join (its FIN came in meanwhile: every byte it will ever get is queued) has its input
     * copied by user space: nothing else writes to its peer, so no byte can overtake another. */
    int joined_verdict[2];
    for (int side = 1; side >= 0; side--) {
        joined_verdict[side] = sockhash_put(verdict_map_fd, f->key[side], f->end[side].fd) == 0;
        if (!joined_verdict[side] && errno != EOPNOTSUPP) perror("bpf(BPF_MAP_UPDATE_ELEM), verdict map");
    }
    /* Bytes that arrived before the insertion: run the verdict on them now. */
    int one = 1;
    for (int side = 0; side < 2; side++) {
        if (joined_verdict[side]) setsockopt(f->end[side].fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
        else { half_copied++; if (copy_input(f, side)) return 1; }
    }
    return settle_sockmap(f);
}

static void accept_flows(struct listener *l) {
    for (int batch = 0; batch < ACCEPT_BATCH; batch++) {
        struct sockaddr_in client;
        socklen_t len = sizeof client;
        int cfd = accept4(l->fd, (struct sockaddr *)&client, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != ECONNABORTED) perror("accept4");
            return;
        }
        int bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (bfd < 0) { perror("socket"); close(cfd); continue; }
        int one = 1;
        setsockopt(bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in *backend = &l->backends[l->next++ % l->backend_count];
        if (connect(bfd, (struct sockaddr *)backend, sizeof *backend) < 0 && errno != EINPROGRESS) {
            connect_failures++; close(bfd); close(cfd); continue;
        }
        struct flow *f = calloc(1, sizeof *f);
        if (!f) die("calloc");
        f->copied[0] = f->copied[1] = mode == COPY;
        flows_opened++;
        for (int i = 0; i < 2; i++) f->end[i] = (struct end){.kind = 0, .fd = i ? bfd : cfd, .side = i, .flow = f};
        uint32_t in_events = mode == COPY ? EPOLLIN : 0;  /* sockmap: user space needs only the ends */
        if (mode == SOCKMAP) {
            struct sockaddr_in local;
            socklen_t llen = sizeof local;
            getsockname(bfd, (struct sockaddr *)&local, &llen);   /* the port connect chose */
            tuple_key(f->key[0], &l->address, &client);
            tuple_key(f->key[1], &local, backend);
        }
        struct epoll_event ev = {.events = in_events | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &f->end[0]};
        if (mode == SOCKMAP) ev.events = EPOLLRDHUP | EPOLLET;
        epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev);
        ev = (struct epoll_event){.events = in_events | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &f->end[1]};
        epoll_ctl(epfd, EPOLL_CTL_ADD, bfd, &ev);
    }
}

static void on_event(struct end *e, uint32_t events) {
    struct flow *f = e->flow;
    int side = e->side;
    if (f->closed) return;
    if (events & EPOLLERR) {                     /* a reset, or a refused connect */
        if (!f->connected) connect_failures++;
        close_flow(f); return;
    }
    /* EPOLLHUP: both directions of this socket are shut; its last bytes may still be queued. */
    if (events & (EPOLLRDHUP | EPOLLHUP)) f->rdhup[side] = 1;
    if (!f->copied[side] && f->rdhup[side]) f->input_ended[side] = 1;
    if (!f->connected) {
        /* The client's bytes or FIN wait in its queue until the backend answers. */
        if (side == 1 && (events & EPOLLOUT)) start_flow(f);
        return;
    }
    if (f->copied[side] && pump(f, side)) return;
    if ((events & EPOLLOUT) && f->copied[!side] && f->left_len[!side] && pump(f, !side)) return;
    settle_sockmap(f);                           /* the redirected directions: only a FIN matters */
}

static void usage(void) {
    fprintf(stderr, "usage: sockmap-relay copy|sockmap LISTEN_ADDR:PORT=BACKEND:PORT[,BACKEND:PORT...] ...\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 3) usage();
    if (!strcmp(argv[1], "copy")) mode = COPY;
    else if (!strcmp(argv[1], "sockmap")) mode = SOCKMAP;
    else usage();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (mode == SOCKMAP) load_bpf();
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
    for (int a = 2; a < argc && listener_count < MAX_LISTENERS; a++) {
        struct listener *l = &listeners[listener_count];
        if (open_listener(argv[a], l, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC) < 0) usage();
        listener_ends[listener_count] = (struct end){.kind = 1, .fd = l->fd, .side = listener_count};
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_ends[listener_count]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0) die("epoll_ctl");
        listener_count++;
    }
    struct epoll_event events[256];
    while (!stop) {
        int n = epoll_wait(epfd, events, 256, waiting_flows ? 1 : -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        wakeups++;
        for (int i = 0; i < n; i++) {
            struct end *e = events[i].data.ptr;
            if (e->kind == 1) accept_flows(&listeners[e->side]);
            else on_event(e, events[i].events);
        }
        /* Flows whose FIN waits for the kworker to queue the last bytes on the peer. */
        struct flow *list = waiting_flows;
        waiting_flows = NULL;
        while (list) {
            struct flow *f = list;
            list = f->next_waiting;
            f->waiting = 0;
            fin_rechecks++;
            settle_sockmap(f);
        }
        while (closed_flows) {
            struct flow *f = closed_flows;
            closed_flows = f->next_closed;
            free(f->left[0]); free(f->left[1]); free(f);
        }
    }
    fprintf(stderr, "sockmap-relay %s: flows opened %llu, closed %llu, connect failures %llu, epoll wake-ups %llu, "
            "FINs that waited for the peer's queue %llu (rechecks %llu), flows copied instead %llu, one direction copied %llu\n",
            argv[1], flows_opened, flows_closed, connect_failures, wakeups, fin_waits, fin_rechecks, copied_flows,
            half_copied);
    return 0;
}
