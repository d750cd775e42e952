/* Membership changes over HTTP (see members.c). */
#ifndef RF_MEMBERS_H
#define RF_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "http_server.h"
#include "node.h"

/* POST /members with body (len bytes, Borrowed for the call). Answers x now or later. */
void rf_members_add(struct rf_node *n, struct rf_http_exchange *x, const char *body, size_t len);

/* DELETE /members/<id>. Answers x now or later. */
void rf_members_remove(struct rf_node *n, struct rf_http_exchange *x, uint64_t id);

#endif
