#ifndef ZONELINK_CNETFILTERCONNTRACK_SHIM_H
#define ZONELINK_CNETFILTERCONNTRACK_SHIM_H
// libnetfilter_conntrack (Debian libnetfilter-conntrack-dev, linked as -lnetfilter_conntrack):
// the kernel data path's NAT table is conntrack's; ZoneLink lists and deletes its zones'
// entries through it.
//
// The library's own header pulls <netinet/in.h> and the kernel's netlink headers into this
// module, which then shadows Glibc's IPPROTO_* for every Swift file of the target. So only the
// few calls and values ZoneLink uses are declared here, as libnetfilter_conntrack 1.0.x
// declares them (libnetfilter_conntrack.h: the same prototypes, the same enum values).
#include <stdint.h>

struct nfct_handle;
struct nf_conntrack;

enum nf_conntrack_attr {
    ATTR_ORIG_IPV4_SRC = 0,
    ATTR_ORIG_IPV4_DST = 1,
    ATTR_REPL_IPV4_SRC = 2,
    ATTR_REPL_IPV4_DST = 3,
    ATTR_ORIG_PORT_SRC = 8,
    ATTR_ORIG_PORT_DST = 9,
    ATTR_REPL_PORT_SRC = 10,
    ATTR_REPL_PORT_DST = 11,
    ATTR_ORIG_L3PROTO = 15,
    ATTR_ORIG_L4PROTO = 17,
    ATTR_TIMEOUT = 24,
    ATTR_MARK = 25,
    ATTR_ORIG_COUNTER_BYTES = 28,
    ATTR_REPL_COUNTER_BYTES = 29,
    ATTR_ZONE = 61,
    ATTR_TIMESTAMP_START = 63,
    ATTR_ORIG_ZONE = 68,
};

enum nf_conntrack_msg_type {
    NFCT_T_ALL = 7,
};

enum nf_conntrack_query {
    NFCT_Q_DESTROY = 2,
    NFCT_Q_DUMP = 5,
};

// What a callback returns; the subsystem nfct_open takes for conntrack entries.
#define ZL_NFCT_CB_STOP 0
#define ZL_NFCT_CB_CONTINUE 1
#define ZL_NFCT_SUBSYS_CONNTRACK 1

extern struct nfct_handle *nfct_open(uint8_t subsys_id, unsigned subscriptions);
extern int nfct_close(struct nfct_handle *cth);
extern int nfct_callback_register(
    struct nfct_handle *h, enum nf_conntrack_msg_type type,
    int (*cb)(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data), void *data);
extern int nfct_query(struct nfct_handle *h, const enum nf_conntrack_query query, const void *data);
extern uint8_t nfct_get_attr_u8(const struct nf_conntrack *ct, const enum nf_conntrack_attr type);
extern uint16_t nfct_get_attr_u16(const struct nf_conntrack *ct, const enum nf_conntrack_attr type);
extern uint32_t nfct_get_attr_u32(const struct nf_conntrack *ct, const enum nf_conntrack_attr type);
extern uint64_t nfct_get_attr_u64(const struct nf_conntrack *ct, const enum nf_conntrack_attr type);
extern int nfct_attr_is_set(const struct nf_conntrack *ct, const enum nf_conntrack_attr type);
#endif
