/* The I/O ceiling of the DNS benchmark: a UDP "server" that does nothing but set the QR bit of
 * each query and send it back, with ZoneLink's I/O model (poll, then recvmmsg and sendmmsg in
 * batches of 64, buffers reused, nothing allocated per datagram). Whatever a real server spends
 * above this per query is the work of answering.
 *
 *   echo PORT        listens on 127.0.0.1:PORT until SIGTERM or SIGINT
 *
 * Built by Benchmarks/dns/run with `cc -O2`. Not a DNS server: it answers every query with
 * the query itself (NOERROR, no records), so the benchmark skips its smoke check and its
 * response-code check. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BATCH = 64, SLOT = 4096 };

static volatile sig_atomic_t stopping = 0;
static void stop(int signal) { (void)signal; stopping = 1; }

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); return 1; }
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) { perror("bind"); return 1; }
    struct sigaction action = { .sa_handler = stop };
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    static unsigned char buffers[BATCH][SLOT];
    static struct sockaddr_in peers[BATCH];
    static struct iovec vectors[BATCH];
    static struct mmsghdr in[BATCH], out[BATCH];
    for (int i = 0; i < BATCH; i++) {
        vectors[i] = (struct iovec){ .iov_base = buffers[i], .iov_len = SLOT };
        in[i].msg_hdr = (struct msghdr){ .msg_name = &peers[i], .msg_namelen = sizeof peers[i],
                                         .msg_iov = &vectors[i], .msg_iovlen = 1 };
    }
    struct pollfd wanted = { .fd = fd, .events = POLLIN };
    while (!stopping) {
        if (poll(&wanted, 1, 200) <= 0) continue;
        for (;;) {
            for (int i = 0; i < BATCH; i++) in[i].msg_hdr.msg_namelen = sizeof peers[i];
            int count = recvmmsg(fd, in, BATCH, MSG_DONTWAIT, NULL);
            if (count <= 0) break;
            int replies = 0;
            for (int i = 0; i < count; i++) {
                unsigned length = in[i].msg_len;
                if (length < 12 || (in[i].msg_hdr.msg_flags & MSG_TRUNC) || (buffers[i][2] & 0x80)) continue;
                buffers[i][2] |= 0x80;  /* QR: a response */
                out[replies].msg_hdr = (struct msghdr){ .msg_name = &peers[i], .msg_namelen = in[i].msg_hdr.msg_namelen,
                                                        .msg_iov = &vectors[i], .msg_iovlen = 1 };
                vectors[i].iov_len = length;
                replies++;
            }
            for (int sent = 0; sent < replies;) {
                int n = sendmmsg(fd, out + sent, (unsigned)(replies - sent), 0);
                if (n <= 0) { if (errno == EINTR) continue; break; }
                sent += n;
            }
            for (int i = 0; i < count; i++) vectors[i].iov_len = SLOT;
            if (count < BATCH) break;
        }
    }
    close(fd);
    return 0;
}
