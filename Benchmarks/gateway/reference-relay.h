/*
 * What the gateway benchmark's reference relays (sockmap-relay.c, uring-relay.c) share: their
 * listeners, each given on the command line as LISTEN_ADDR:PORT=BACKEND:PORT[,BACKEND:PORT...]
 * and served round robin over its backends. Included after <linux/tcp.h> or <netinet/tcp.h>
 * (whichever the relay needs; they do not go together), for TCP_NODELAY.
 */
#ifndef REFERENCE_RELAY_H
#define REFERENCE_RELAY_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_LISTENERS 8
#define MAX_BACKENDS 8

struct listener {
    int fd;
    struct sockaddr_in address;
    struct sockaddr_in backends[MAX_BACKENDS];
    int backend_count;
    unsigned next;
};

/* "A.B.C.D:PORT" into `out`; 0, or -1 when it is not one. */
static int parse_address(const char *text, struct sockaddr_in *out) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) return -1;
    memcpy(host, text, colon - text); host[colon - text] = 0;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

/* Parses one listener's `spec` into `l` and listens on its address, with TCP_NODELAY (accepted
 * sockets inherit it); `socket_type` is SOCK_STREAM with the relay's flags. Returns 0; -1 for a
 * spec that does not parse; exits when the socket cannot listen. */
static int open_listener(const char *spec, struct listener *l, int socket_type) {
    char *text = strdup(spec), *eq = text ? strchr(text, '=') : NULL;
    if (!eq) { free(text); return -1; }
    *eq = 0;
    if (parse_address(text, &l->address) < 0) { free(text); return -1; }
    for (char *b = strtok(eq + 1, ","); b && l->backend_count < MAX_BACKENDS; b = strtok(NULL, ","))
        if (parse_address(b, &l->backends[l->backend_count++]) < 0) { free(text); return -1; }
    free(text);
    if (l->backend_count == 0) return -1;
    int one = 1;
    if ((l->fd = socket(AF_INET, socket_type, 0)) < 0) { perror("socket"); exit(1); }
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(l->fd, (struct sockaddr *)&l->address, sizeof l->address) < 0) { perror("bind"); exit(1); }
    if (listen(l->fd, 4096) < 0) { perror("listen"); exit(1); }
    return 0;
}

#endif
