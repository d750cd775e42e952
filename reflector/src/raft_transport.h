/*
 * The reflector's raft_uv transport: peers by DNS host name or IPv4 literal.
 *
 * raft 0.15's stock TCP transport parses IPv4 literals only, and a Kubernetes pod keeps its
 * DNS name across restarts but not its IP. This transport keeps the name in the raft
 * configuration ("reflector-1.reflector-headless.ns.svc.cluster.local:7000") and resolves it
 * again on every connection attempt (libuv's uv_getaddrinfo, first IPv4 answer), so a peer
 * that comes back with a new IP is dialed at the new one on the next retry. Every attempt is
 * bounded by a connect timeout, so a dial to an address nobody answers any more gives up and
 * resolves again instead of hanging for the kernel's SYN retries.
 *
 * Listening (accept and handshake decoding) is delegated to raft's own TCP transport. When this
 * node's raft address is a host name, it listens on 0.0.0.0 at that port (a name can map to an
 * address that changes while the process runs); an IPv4 literal keeps binding that address.
 * Outgoing connections speak the raft_uv handshake (protocol 1: version, server id, padded
 * address length, address; 64-bit little-endian words), so both transports interoperate.
 */
#ifndef RF_RAFT_TRANSPORT_H
#define RF_RAFT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "hostport.h"

/* Default bound on one connection attempt (resolve, TCP connect, handshake write). */
#define RF_TRANSPORT_CONNECT_TIMEOUT_MS 2000

/*
 * Sets up t (every member is overwritten) on loop. Returns 0 or a RAFT_* code with a message
 * in t->errmsg. Release with rf_raft_transport_close() after raft_uv_close(), i.e. from raft's
 * close callback, as with raft_uv_tcp_close().
 */
int rf_raft_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
			   unsigned connect_timeout_ms);

/* Releases the memory of a transport that raft has closed (or never initialized). */
void rf_raft_transport_close(struct raft_uv_transport *t);

#endif
