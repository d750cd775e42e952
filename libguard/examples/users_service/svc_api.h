/* The users service's HTTP API: routing, JSON bodies, replies (see svc_api.c). */
#ifndef SVC_API_H
#define SVC_API_H

#include "svc_http.h"
#include "svc_store.h"

struct svc_api {
	struct svc_store *store; /* Borrowed */
	uint64_t responses[6];   /* by status class: [2] = 2xx ... [5] = 5xx */
};

/* The svc_http handler; ud is a struct svc_api. */
void svc_api_handle(void *ud, const struct svc_http_req *req, struct svc_http_resp *resp);

/* Renders /metrics (Prometheus text format 0.0.4). Returns a malloc'd string or NULL. */
char *svc_metrics_render(const struct svc_api *api, size_t *len);

#endif
