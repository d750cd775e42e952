/* The reflector's HTTP endpoints (see http_route.h for the table). */
#ifndef RF_API_H
#define RF_API_H

#include "http_server.h"
#include "node.h"

/* rf_http_handler for the server; data is the struct rf_node (Borrowed, outlives the server). */
void rf_api_handle(void *data, struct rf_http_exchange *x, const struct rf_http_request *req);

#endif
