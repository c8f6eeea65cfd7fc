/*
 * uring-relay: a third reference relay for the gateway benchmark (path c-uring), beside
 * sockmap-relay.c's c-copy and c-sockmap. It asks one question of issue 13's last goal (the relay
 * at <= 0.8x HAProxy's CPU per keep-alive request): does batching a relay's syscalls through
 * io_uring take a user-space relay below the minimal epoll relay (c-copy), whose four syscalls
 * per request (a read and a send each way) ZoneLink's relay already matches?
 *
 *   uring-relay LISTEN_ADDR:PORT=BACKEND:PORT[,BACKEND:PORT...] [...]
 *
 * One thread, one ring, raw io_uring_setup/io_uring_enter (no liburing on this machine):
 *  - a multishot accept per listener; per flow a socket() and an IORING_OP_CONNECT;
 *  - a multishot recv per socket into a ring of provided buffers (IORING_REGISTER_PBUF_RING):
 *    it stays armed for the flow's life, so a request costs no re-arming;
 *  - one IORING_OP_SEND at a time per direction (later buffers wait in order behind it); a
 *    buffer goes back to the ring when its bytes are all sent;
 *  - the end of a direction's input (a recv of 0) becomes an IORING_OP_SHUTDOWN of the peer once
 *    its bytes are sent; the second direction to end closes both sockets;
 *  - IORING_SETUP_DEFER_TASKRUN: completions run only inside the one io_uring_enter per loop,
 *    which submits every queued operation and waits for the next completion. Under load a
 *    request's two recvs and two sends share that syscall with other flows' operations.
 *  - a direction holds at most QUEUE_LIMIT buffers: beyond that its recv is cancelled
 *    (IORING_OP_ASYNC_CANCEL) and armed again once the peer has taken half of them, as an
 *    epoll relay stops reading a socket whose peer does not take its bytes.
 * A prototype: no limits on flows, errors close the flow.
 *
 * On SIGTERM or SIGINT it prints its counters to stderr and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "reference-relay.h"

#define RING_ENTRIES 4096
#define BUFFERS 1024                 /* provided buffers, a power of two */
#define BUFFER_SIZE (32 * 1024)
#define BUFFER_GROUP 1
#define QUEUE_LIMIT 8                /* buffers (256 KiB) one direction may hold */

enum op { OP_ACCEPT, OP_CONNECT, OP_RECV, OP_SEND, OP_SHUTDOWN, OP_CANCEL };

/* One direction of a flow: the bytes side `from` received, on their way to its peer. */
struct direction {
    int head, tail;                  /* queued buffers (ids, linked through next_buffer), -1: none */
    int queued;                      /* how many */
    uint32_t offset;                 /* bytes of the head buffer already sent */
    int sending;                     /* an OP_SEND of the head buffer is in flight */
    int recv_armed;                  /* the multishot recv of side `from` is armed */
    int input_ended;                 /* side `from` sent its FIN (or failed) */
    int forwarded;                   /* ... and the peer was shut for writing */
    int starved;                     /* the recv ended for want of buffers: re-arm when some return */
    int paused;                      /* the recv was cancelled at QUEUE_LIMIT: re-arm when half are sent */
};

struct flow {
    int fd[2];                       /* 0: client, 1: backend */
    struct direction dir[2];         /* dir[i]: bytes received on fd[i] */
    int connected, closing;
    int ops;                         /* operations in flight that name the flow */
    struct flow *next_starved;
} __attribute__((aligned(16)));

static int ring_fd;
static unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;
static unsigned sq_local_tail, to_submit;
static struct io_uring_buf_ring *buffer_ring;
static unsigned buffer_ring_tail;
static int buffers_returned;         /* since the starved flows were last re-armed */
static char *buffer_memory;
static int next_buffer[BUFFERS];
static uint32_t buffer_length[BUFFERS];
static struct listener listeners[MAX_LISTENERS];
static int listener_count;
static struct flow *starved_flows;
static volatile sig_atomic_t stop;
static unsigned long long flows_opened, flows_closed, connect_failures, enters, completions, starvations;

static void die(const char *what) { perror(what); exit(1); }
static void on_signal(int sig) { (void)sig; stop = 1; }

/* ---- The ring. */

static void setup_ring(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = RING_ENTRIES * 4;
    ring_fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (ring_fd < 0) die("io_uring_setup");
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) { fprintf(stderr, "io_uring: no single mmap\n"); exit(1); }
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t size = sq_size > cq_size ? sq_size : cq_size;
    char *rings = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQ_RING);
    if (rings == MAP_FAILED) die("mmap rings");
    sq_head = (unsigned *)(rings + p.sq_off.head);
    sq_tail = (unsigned *)(rings + p.sq_off.tail);
    sq_mask = (unsigned *)(rings + p.sq_off.ring_mask);
    sq_array = (unsigned *)(rings + p.sq_off.array);
    cq_head = (unsigned *)(rings + p.cq_off.head);
    cq_tail = (unsigned *)(rings + p.cq_off.tail);
    cq_mask = (unsigned *)(rings + p.cq_off.ring_mask);
    cqes = (struct io_uring_cqe *)(rings + p.cq_off.cqes);
    sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                ring_fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) die("mmap sqes");
    sq_local_tail = *sq_tail;

    /* The provided buffers: a ring the kernel takes buffers from, BUFFERS of BUFFER_SIZE. */
    size_t ring_bytes = BUFFERS * sizeof(struct io_uring_buf);
    buffer_ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    buffer_memory = mmap(NULL, (size_t)BUFFERS * BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buffer_ring == MAP_FAILED || buffer_memory == MAP_FAILED) die("mmap buffers");
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uintptr_t)buffer_ring;
    reg.ring_entries = BUFFERS;
    reg.bgid = BUFFER_GROUP;
    if (syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) die("IORING_REGISTER_PBUF_RING");
}

static void give_buffer(int id) {
    struct io_uring_buf *b = &buffer_ring->bufs[buffer_ring_tail & (BUFFERS - 1)];
    b->addr = (uintptr_t)(buffer_memory + (size_t)id * BUFFER_SIZE);
    b->len = BUFFER_SIZE;
    b->bid = (uint16_t)id;
    buffer_ring_tail++;
    buffers_returned = 1;
    atomic_store_explicit((_Atomic uint16_t *)&buffer_ring->tail, (uint16_t)buffer_ring_tail, memory_order_release);
}

/* Submits what is queued and waits for at least `wait` completions. */
static void enter(unsigned wait) {
    atomic_store_explicit((_Atomic unsigned *)sq_tail, sq_local_tail, memory_order_release);
    int n = (int)syscall(__NR_io_uring_enter, ring_fd, to_submit, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
    enters++;
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EBUSY) return;
        die("io_uring_enter");
    }
    to_submit -= (unsigned)n;
}

static struct io_uring_sqe *next_sqe(void) {
    if (sq_local_tail - atomic_load_explicit((_Atomic unsigned *)sq_head, memory_order_acquire) >= RING_ENTRIES) enter(0);
    unsigned index = sq_local_tail & *sq_mask;
    struct io_uring_sqe *sqe = &sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sq_array[index] = index;
    sq_local_tail++;
    to_submit++;
    return sqe;
}

/* user_data: the flow (or listener) pointer, 16-aligned, with the operation and side below it. */
static uint64_t tag(void *object, enum op op, int side) { return (uint64_t)(uintptr_t)object | (uint64_t)op << 1 | (uint64_t)side; }

/* ---- Operations. */

static void arm_accept(int listener) {
    struct io_uring_sqe *sqe = next_sqe();
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = listeners[listener].fd;
    sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    sqe->accept_flags = SOCK_CLOEXEC;
    sqe->user_data = (uint64_t)listener << 4 | (uint64_t)OP_ACCEPT << 1;  /* a small number, not a pointer */
}

static void arm_recv(struct flow *f, int side) {
    struct io_uring_sqe *sqe = next_sqe();
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = f->fd[side];
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUFFER_GROUP;
    sqe->user_data = tag(f, OP_RECV, side);
    f->dir[side].recv_armed = 1;
    f->ops++;
}

static void send_head(struct flow *f, int side) {
    struct direction *d = &f->dir[side];
    struct io_uring_sqe *sqe = next_sqe();
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = f->fd[!side];
    sqe->addr = (uintptr_t)(buffer_memory + (size_t)d->head * BUFFER_SIZE + d->offset);
    sqe->len = buffer_length[d->head] - d->offset;
    sqe->msg_flags = MSG_NOSIGNAL;
    sqe->user_data = tag(f, OP_SEND, side);
    d->sending = 1;
    f->ops++;
}

static void cancel_recv(struct flow *f, int side) {
    struct io_uring_sqe *sqe = next_sqe();
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = tag(f, OP_RECV, side);
    sqe->user_data = tag(f, OP_CANCEL, side);
    f->dir[side].paused = 1;
    f->ops++;
}

static void shut_peer(struct flow *f, int side) {
    struct io_uring_sqe *sqe = next_sqe();
    sqe->opcode = IORING_OP_SHUTDOWN;
    sqe->fd = f->fd[!side];
    sqe->len = SHUT_WR;
    sqe->user_data = tag(f, OP_SHUTDOWN, side);
    f->ops++;
}

/* ---- Flows. */

/* Stops the flow: its recvs end (shutdown makes them complete), queued buffers go back; the
 * sockets close and the memory goes when no operation names the flow any more. */
static void fail_flow(struct flow *f) {
    if (f->closing) return;
    f->closing = 1;
    for (int side = 0; side < 2; side++) shutdown(f->fd[side], SHUT_RDWR);
}

static void release_if_done(struct flow *f) {
    if (!f->closing || f->ops) return;
    for (int side = 0; side < 2; side++) {
        struct direction *d = &f->dir[side];
        while (d->head >= 0) { int id = d->head; d->head = next_buffer[id]; give_buffer(id); }
        close(f->fd[side]);
    }
    if (f->dir[0].starved || f->dir[1].starved)
        for (struct flow **p = &starved_flows; *p; p = &(*p)->next_starved)
            if (*p == f) { *p = f->next_starved; break; }
    flows_closed++;
    free(f);
}

/* Side `side`'s input has ended and its bytes are all sent: pass the FIN on; the second
 * direction to end ends the flow. */
static void settle(struct flow *f, int side) {
    struct direction *d = &f->dir[side];
    if (f->closing || !d->input_ended || d->forwarded || d->sending || d->head >= 0) return;
    d->forwarded = 1;
    if (f->dir[!side].forwarded) { f->closing = 1; return; }
    shut_peer(f, side);
}

static void on_recv(struct flow *f, int side, struct io_uring_cqe *cqe) {
    struct direction *d = &f->dir[side];
    if (cqe->res > 0) {
        int id = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        buffer_length[id] = (uint32_t)cqe->res;
        next_buffer[id] = -1;
        if (f->closing) { give_buffer(id); }
        else {
            if (d->head < 0) d->head = id; else next_buffer[d->tail] = id;
            d->tail = id;
            d->queued++;
            if (!d->sending) send_head(f, side);
            if (d->queued >= QUEUE_LIMIT && d->recv_armed && !d->paused && (cqe->flags & IORING_CQE_F_MORE)) cancel_recv(f, side);
        }
    }
    if (cqe->flags & IORING_CQE_F_MORE) return;
    d->recv_armed = 0;
    if (f->closing) return;
    if (cqe->res == -ECANCELED || (d->paused && (cqe->res > 0 || cqe->res == -ENOBUFS))) {
        d->paused = 1;                          /* armed again by on_send */
    } else if (cqe->res == -ENOBUFS) {                 /* every buffer is queued somewhere: wait */
        starvations++;
        if (!d->starved) { d->starved = 1; f->next_starved = starved_flows; starved_flows = f; }
    } else if (cqe->res == 0) {
        d->paused = 0;
        d->input_ended = 1;
        settle(f, side);
    } else if (cqe->res < 0) {
        fail_flow(f);
    } else {
        arm_recv(f, side);                      /* ended with bytes: the kernel stopped it */
    }
}

static void on_send(struct flow *f, int side, struct io_uring_cqe *cqe) {
    struct direction *d = &f->dir[side];
    d->sending = 0;
    if (cqe->res < 0) { fail_flow(f); return; }
    d->offset += (uint32_t)cqe->res;
    if (d->offset == buffer_length[d->head]) {
        int id = d->head;
        d->head = next_buffer[id];
        d->offset = 0;
        d->queued--;
        give_buffer(id);
    }
    if (f->closing) return;
    if (d->paused && !d->recv_armed && d->queued <= QUEUE_LIMIT / 2) { d->paused = 0; arm_recv(f, side); }
    if (d->head >= 0) send_head(f, side);
    else settle(f, side);
}

static void on_accept(int index, struct io_uring_cqe *cqe) {
    struct listener *l = &listeners[index];
    if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(index);
    if (cqe->res < 0) return;
    int cfd = cqe->res;
    int bfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bfd < 0) { perror("socket"); close(cfd); return; }
    int one = 1;
    setsockopt(bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct flow *f = aligned_alloc(16, sizeof *f);
    if (!f) die("aligned_alloc");
    memset(f, 0, sizeof *f);
    f->fd[0] = cfd; f->fd[1] = bfd;
    for (int side = 0; side < 2; side++) f->dir[side].head = f->dir[side].tail = -1;
    flows_opened++;
    struct sockaddr_in *backend = &l->backends[l->next++ % l->backend_count];
    struct io_uring_sqe *sqe = next_sqe();
    sqe->opcode = IORING_OP_CONNECT;
    sqe->fd = bfd;
    sqe->addr = (uintptr_t)backend;
    sqe->off = sizeof *backend;
    sqe->user_data = tag(f, OP_CONNECT, 1);
    f->ops++;
}

static void on_completion(struct io_uring_cqe *cqe) {
    uint64_t data = cqe->user_data;
    enum op op = (enum op)((data >> 1) & 7);
    if (op == OP_ACCEPT) { on_accept((int)(data >> 4), cqe); return; }
    struct flow *f = (struct flow *)(uintptr_t)(data & ~(uint64_t)15);
    int side = (int)(data & 1);
    /* A multishot recv's completions name the flow until the last one (no F_MORE). */
    if (!(op == OP_RECV && (cqe->flags & IORING_CQE_F_MORE))) f->ops--;
    switch (op) {
    case OP_CONNECT:
        if (cqe->res < 0) { connect_failures++; fail_flow(f); break; }
        f->connected = 1;
        if (!f->closing) { arm_recv(f, 0); arm_recv(f, 1); }
        break;
    case OP_RECV: on_recv(f, side, cqe); break;
    case OP_SEND: on_send(f, side, cqe); break;
    case OP_SHUTDOWN: if (cqe->res < 0) fail_flow(f); break;
    case OP_CANCEL: break;                      /* the recv's own completion says how it ended */
    default: break;
    }
    /* A flow both of whose directions are forwarded ends once nothing is in flight: its
     * recvs have ended with their zeros, its sends and shutdowns completed. */
    release_if_done(f);
}

static void rearm_starved(void) {
    struct flow *list = starved_flows;
    starved_flows = NULL;
    while (list) {
        struct flow *f = list;
        list = f->next_starved;
        for (int side = 0; side < 2; side++) {
            if (!f->dir[side].starved) continue;
            f->dir[side].starved = 0;
            if (!f->closing) arm_recv(f, side);
        }
    }
}

static void usage(void) {
    fprintf(stderr, "usage: uring-relay LISTEN_ADDR:PORT=BACKEND:PORT[,BACKEND:PORT...] ...\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction action = {.sa_handler = on_signal};    /* no SA_RESTART: the wait returns */
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    setup_ring();
    for (int id = 0; id < BUFFERS; id++) give_buffer(id);
    for (int a = 1; a < argc && listener_count < MAX_LISTENERS; a++) {
        struct listener *l = &listeners[listener_count];
        if (open_listener(argv[a], l, SOCK_STREAM | SOCK_CLOEXEC) < 0) usage();
        arm_accept(listener_count);
        listener_count++;
    }
    while (!stop) {
        enter(1);
        unsigned head = *cq_head, tail = atomic_load_explicit((_Atomic unsigned *)cq_tail, memory_order_acquire);
        for (; head != tail; head++) {
            on_completion(&cqes[head & *cq_mask]);
            completions++;
        }
        atomic_store_explicit((_Atomic unsigned *)cq_head, head, memory_order_release);
        if (starved_flows && buffers_returned) rearm_starved();
        buffers_returned = 0;
    }
    fprintf(stderr, "uring-relay: flows opened %llu, closed %llu, connect failures %llu, io_uring_enter calls %llu, "
            "completions %llu, recvs that waited for buffers %llu\n",
            flows_opened, flows_closed, connect_failures, enters, completions, starvations);
    return 0;
}
