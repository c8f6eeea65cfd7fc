// Splicing: the TCP relay's kernel shortcut for a flow that has shown itself long-lived. Both
// sockets of the flow join two BPF sockhashes; a stream-verdict program redirects every byte a
// socket receives to its peer's egress, so the bytes no longer come up to user space.
//
// The program is written out below as BPF instructions and loaded with bpf(): no compiler and
// no libbpf at build time. Keys are socket cookies (SO_COOKIE), unique on the host: a tuple
// would not be, since consumer VPCs may use the same addresses.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CZoneLinkSystem.h"

static long bpf_call(int command, union bpf_attr *attr) { return syscall(__NR_bpf, command, attr, sizeof(*attr)); }

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

static int sockhash(unsigned entries) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_SOCKHASH;
    attr.key_size = sizeof(uint64_t);   // a socket cookie
    attr.value_size = sizeof(uint32_t); // a descriptor, on update
    attr.max_entries = entries;
    return (int)bpf_call(BPF_MAP_CREATE, &attr);
}

int zl_splice_open(int *targets, int *verdicts, unsigned entries, char *log, unsigned log_size) {
    *targets = *verdicts = -1;
    int target_map = sockhash(entries);
    if (target_map < 0) return -errno;
    int verdict_map = sockhash(entries);
    if (verdict_map < 0) { int error = errno; close(target_map); return -error; }

    // r6 = ctx. A segment with a FIN and no bytes reaches the verdict too; redirected, the
    // peer's work item would "send" 0 bytes, take that for a broken pipe and stop the peer:
    // such a segment carries nothing (TCP has noted the FIN), so it is dropped. Otherwise
    // bpf_sk_redirect_hash(ctx, targets, &cookie, 0) sends the bytes out of the socket stored
    // under this socket's cookie, its peer; SK_PASS with no redirect set (the peer has left
    // the map) keeps them in this socket's own queue.
    struct bpf_insn program[] = {
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, offsetof(struct __sk_buff, len), 0),
        INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 2, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, SK_DROP),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_socket_cookie),
        INSN(BPF_STX | BPF_MEM | BPF_DW, 10, 0, -8, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0),
        INSN(BPF_LD | BPF_DW | BPF_IMM, 2, BPF_PSEUDO_MAP_FD, 0, target_map),
        INSN(0, 0, 0, 0, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 10, 0, 0),
        INSN(BPF_ALU64 | BPF_ADD | BPF_K, 3, 0, 0, -8),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, 0),
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_redirect_hash),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, SK_PASS),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SK_SKB;
    attr.insns = (uintptr_t)program;
    attr.insn_cnt = sizeof program / sizeof program[0];
    attr.license = (uintptr_t)"GPL";
    int program_fd = (int)bpf_call(BPF_PROG_LOAD, &attr);
    if (program_fd < 0) {
        int error = errno;
        // Once more with the verifier's log, for the operator (a log that does not fit would
        // itself fail the load, so the first try has none).
        if (log && log_size) {
            log[0] = 0;
            attr.log_buf = (uintptr_t)log;
            attr.log_size = log_size;
            attr.log_level = 1;
            int retried = (int)bpf_call(BPF_PROG_LOAD, &attr);
            if (retried >= 0) close(retried);
        }
        close(target_map);
        close(verdict_map);
        return -error;
    }
    memset(&attr, 0, sizeof attr);
    attr.target_fd = verdict_map;
    attr.attach_bpf_fd = program_fd;
    attr.attach_type = BPF_SK_SKB_STREAM_VERDICT;
    int attached = (int)bpf_call(BPF_PROG_ATTACH, &attr);
    int error = errno;
    close(program_fd);                  // the map holds it now
    if (attached < 0) { close(target_map); close(verdict_map); return -error; }
    *targets = target_map;
    *verdicts = verdict_map;
    return 0;
}

int zl_sockhash_put(int map, uint64_t cookie, int fd) {
    union bpf_attr attr;
    uint32_t value = (uint32_t)fd;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)map;
    attr.key = (uintptr_t)&cookie;
    attr.value = (uintptr_t)&value;
    attr.flags = BPF_ANY;
    return bpf_call(BPF_MAP_UPDATE_ELEM, &attr) < 0 ? -errno : 0;
}

int zl_sockhash_delete(int map, uint64_t cookie) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)map;
    attr.key = (uintptr_t)&cookie;
    return bpf_call(BPF_MAP_DELETE_ELEM, &attr) < 0 ? -errno : 0;
}

int zl_socket_cookie(int fd, uint64_t *cookie) {
    socklen_t length = sizeof *cookie;
    return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &length);
}

int zl_tcp_counts(int fd, uint64_t *received, uint64_t *written) {
    struct tcp_info info;
    socklen_t length = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) < 0) return -1;
    // bytes_received advances with rcv_nxt (a FIN counts one); bytes_sent counts data sent,
    // retransmissions included; notsent_bytes is written but not sent yet.
    if (received) *received = info.tcpi_bytes_received;
    if (written) *written = info.tcpi_bytes_sent - info.tcpi_bytes_retrans + info.tcpi_notsent_bytes;
    return 0;
}
