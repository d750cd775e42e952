/*
 * The coherence pipeline: while this node leads, consume the outbox and keep the cached Redis
 * keys fresh (docs/data-contract.md, reflector/README.md "Coherence").
 */
#ifndef RF_COHERENCE_H
#define RF_COHERENCE_H

#include <libguard/runtime.h>

#include "config.h"
#include "node.h"
#include "status.h"

struct rf_coherence;

/*
 * Creates the pipeline for rt and cfg (both Borrowed: they must outlive it). When cfg has no
 * postgres or no redis setting it stays idle (logged once). Returns 0 or -1 (out of memory).
 */
int rf_coherence_new(struct lg_runtime *rt, const struct rf_config *cfg, struct rf_coherence **out);

/* The node whose raft log records fencing tokens (fencing.h); Borrowed, set before the node
 * starts. Without one (tests embedding the pipeline) the token is max(term, Redis' + 1). */
void rf_coherence_attach(struct rf_coherence *c, struct rf_node *node);

/* Leadership hooks that start and stop the leader session (see struct rf_leader_hooks). */
void rf_coherence_became_leader(void *coh, uint64_t term);
void rf_coherence_lost_leadership(void *coh, uint64_t term);

/* Live counters and connection state (Borrowed for the pipeline's lifetime). */
const struct rf_coherence_stats *rf_coherence_stats(const struct rf_coherence *c);

/* Frees the pipeline. Only once no session is left (after lg_runtime_free). NULL: no-op. */
void rf_coherence_free(struct rf_coherence *c);

#endif
