/* test_proxy_net.h — what the proxy's socket tests share: a free loopback port for a
 * listener, a client connection to it, and a timer that keeps uv_run waking while client
 * threads work. */
#ifndef SLUICE_TEST_PROXY_NET_H
#define SLUICE_TEST_PROXY_NET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common/time.h"

static void test_tick(uv_timer_t *t)
{
    (void)t; /* only wakes the loop, so conditions set by client threads are seen */
}

static int test_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* A blocking socket connected to 127.0.0.1:port; -1 when the connect fails (the socket is
 * closed then). */
static int test_connect(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) return s;
    close(s);
    return -1;
}

#endif
