/*
 * LD_PRELOAD shim for LocalStack's host runtime, built by scripts/localstack_host.sh into
 * .local/localstack/lib/bind_loopback.so.
 *
 * LocalStack itself listens where GATEWAY_LISTEN says (127.0.0.1), but it starts DynamoDB Local
 * (a Java server) on a port of its choosing, and DynamoDB Local has no option for the address:
 * Jetty binds every interface. This shim turns a bind() to the wildcard address (0.0.0.0, or ::
 * for IPv6) into a bind() to loopback (127.0.0.1, or ::ffff:127.0.0.1 so that IPv4 clients of
 * a dual-stack socket still reach it), so nothing the host runtime starts is reachable from
 * another machine. Every other bind() passes through unchanged.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) {
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    }
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in in4;
        memcpy(&in4, addr, sizeof in4);
        if (in4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&in4, sizeof in4);
        }
    } else if (addr && addr->sa_family == AF_INET6 &&
               len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof in6);
        if (memcmp(&in6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) {
            inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
            return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
        }
    }
    return real_bind(fd, addr, len);
}
