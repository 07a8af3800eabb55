/* wan_delay: a constant one-way delay between two network interfaces, for the lab's WAN links
 * on kernels without sch_netem. Every frame that arrives on A is sent out of B `delay` later,
 * and every frame that arrives on B is sent out of A `delay` later (raw AF_PACKET sockets).
 * GSO/checksum-offload metadata is carried across with PACKET_VNET_HDR, so large TCP segments
 * pass as they are; a qdisc on the sending interface (tbf) still shapes what is sent.
 *
 *   wan_delay IFACE_A IFACE_B DELAY_US
 *
 * Runs until SIGTERM/SIGINT. Frames beyond MAX_QUEUE per direction are dropped (counted).
 * Built by lab.sh with `cc -O2`; plain C, Linux only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (65536 + sizeof(struct virtio_net_hdr) + 64)
#define MAX_QUEUE 20000

struct frame {
    struct frame *next;
    uint64_t due_ns;
    size_t len;
    unsigned char data[];
};

struct dir {
    int in_fd, out_fd;
    struct frame *head, *tail;
    size_t queued;
    unsigned long long forwarded, dropped;
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int open_iface(const char *name) {
    const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (fd < 0) { perror("socket(AF_PACKET)"); exit(1); }
    const int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
        perror("PACKET_VNET_HDR"); exit(1);
    }
#ifdef PACKET_IGNORE_OUTGOING
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0) {
        perror("PACKET_IGNORE_OUTGOING"); exit(1);
    }
#else
#error "PACKET_IGNORE_OUTGOING (Linux 4.20) is needed"
#endif
    const unsigned idx = if_nametoindex(name);
    if (idx == 0) { fprintf(stderr, "wan_delay: no interface %s\n", name); exit(1); }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)idx;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) { perror("bind"); exit(1); }
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = (int)idx;
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
        perror("PACKET_MR_PROMISC"); exit(1);
    }
    const int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    return fd;
}

/* Reads every frame waiting on d->in_fd into d's queue. */
static void drain(struct dir *d, uint64_t delay_ns, unsigned char *scratch) {
    for (;;) {
        const ssize_t n = recv(d->in_fd, scratch, MAX_FRAME, MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR) continue;
            return; /* EAGAIN: drained */
        }
        if ((size_t)n > MAX_FRAME || d->queued >= MAX_QUEUE) {
            d->dropped++;
            continue;
        }
        struct frame *f = malloc(sizeof *f + (size_t)n);
        if (!f) { d->dropped++; continue; }
        f->next = NULL;
        f->due_ns = now_ns() + delay_ns;
        f->len = (size_t)n;
        memcpy(f->data, scratch, (size_t)n);
        if (d->tail) d->tail->next = f; else d->head = f;
        d->tail = f;
        d->queued++;
    }
}

/* Sends the frames of d that are due; returns ns until the next one (or UINT64_MAX). */
static uint64_t flush(struct dir *d) {
    const uint64_t now = now_ns();
    while (d->head && d->head->due_ns <= now) {
        struct frame *f = d->head;
        if (send(d->out_fd, f->data, f->len, 0) < 0) d->dropped++; else d->forwarded++;
        d->head = f->next;
        if (!d->head) d->tail = NULL;
        d->queued--;
        free(f);
    }
    return d->head ? d->head->due_ns - now : UINT64_MAX;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: wan_delay IFACE_A IFACE_B DELAY_US\n");
        return 2;
    }
    const uint64_t delay_ns = strtoull(argv[3], NULL, 10) * 1000ull;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    const int a = open_iface(argv[1]);
    const int b = open_iface(argv[2]);
    struct dir ab = {.in_fd = a, .out_fd = b}, ba = {.in_fd = b, .out_fd = a};
    unsigned char *scratch = malloc(MAX_FRAME);
    if (!scratch) return 1;
    fprintf(stderr, "wan_delay: %s <-> %s, %llu us each way\n", argv[1], argv[2],
            (unsigned long long)(delay_ns / 1000));

    while (!stop) {
        const uint64_t w1 = flush(&ab), w2 = flush(&ba);
        const uint64_t wait = w1 < w2 ? w1 : w2;
        struct pollfd pfd[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        struct timespec ts, *tsp = NULL;
        if (wait != UINT64_MAX) {
            ts.tv_sec = (time_t)(wait / 1000000000ull);
            ts.tv_nsec = (long)(wait % 1000000000ull);
            tsp = &ts;
        }
        const int r = ppoll(pfd, 2, tsp, NULL);
        if (r < 0 && errno != EINTR) { perror("ppoll"); return 1; }
        if (r > 0) {
            if (pfd[0].revents & POLLIN) drain(&ab, delay_ns, scratch);
            if (pfd[1].revents & POLLIN) drain(&ba, delay_ns, scratch);
        }
    }
    fprintf(stderr, "wan_delay: %s->%s forwarded %llu dropped %llu; %s->%s forwarded %llu dropped %llu\n",
            argv[1], argv[2], ab.forwarded, ab.dropped, argv[2], argv[1], ba.forwarded, ba.dropped);
    return 0;
}
