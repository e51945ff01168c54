/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listen.c - the key server's listening sockets: TCP (SO_REUSEPORT per
 * event loop, TCP_DEFER_ACCEPT) and the unix socket.
 */
#include "srv_front.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024

/*
 * A listening socket for host:port.  reuseport 0 makes a probe: every loop
 * binds its own socket with SO_REUSEPORT, which would also let a second
 * server started by mistake share the port silently; an exclusive bind
 * first makes that an "address in use" error.
 */
int lurk_srv_listen_tcp(const char *host, int port, int reuseport, int defer_s, int *bound_port,
                        char *why, size_t whylen)
{
    struct addrinfo hints;
    struct addrinfo *ai = NULL;
    char portstr[16];
    int fd = -1;
    int one = 1;
    int rc;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        lurk_why(why, whylen, "listen %s:%d: %s", host, port, gai_strerror(rc));
        goto end;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        lurk_why(why, whylen, "listen %s:%d: socket: %s", host, port, strerror(errno));
        goto end;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0
        || (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)) {
        lurk_why(why, whylen, "listen %s:%d: setsockopt: %s", host, port, strerror(errno));
        goto fail;
    }
    /* accepted sockets inherit it on Linux; conn_new sets it again */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* A connection is accepted only once its first bytes (the ClientHello)
     * are in: a bare TCP connection never reaches the event loop, and a
     * client's ClientHello is read in the same turn as its accept. */
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        lurk_why(why, whylen, "listen %s:%d: %s", host, port, strerror(errno));
        goto fail;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        lurk_why(why, whylen, "listen %s:%d: getsockname: %s", host, port, strerror(errno));
        goto fail;
    }
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    goto end;

fail:
    close(fd);
    fd = -1;
end:
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    return fd;
}

int lurk_srv_listen_unix(const char *path, char *why, size_t whylen)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd = -1;
    mode_t old;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        lurk_why(why, whylen, "unix_socket %s: path too long", path);
        goto end;
    }
    memcpy(sun.sun_path, path, strlen(path));
    /* a socket left by a previous run; anything else is never removed */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            lurk_why(why, whylen, "unix_socket %s: exists and is not a socket", path);
            goto end;
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        lurk_why(why, whylen, "unix_socket %s: %s", path, strerror(errno));
        goto end;
    }
    old = umask(0117);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        umask(old);
        lurk_why(why, whylen, "unix_socket %s: %s", path, strerror(errno));
        close(fd);
        fd = -1;
        goto end;
    }
    umask(old);
    if (chmod(path, 0660) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        lurk_why(why, whylen, "unix_socket %s: %s", path, strerror(errno));
        close(fd);
        fd = -1;
        unlink(path);
    }

end:
    return fd;
}

void lurk_srv_format_addr(char *out, size_t len, const char *host, int port)
{
    if (strchr(host, ':') != NULL) {
        snprintf(out, len, "[%s]:%d", host, port);
    } else {
        snprintf(out, len, "%s:%d", host, port);
    }
}
