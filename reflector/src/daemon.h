/* The lifeguard-reflector process: node + HTTP on one loop, signals, graceful shutdown. */
#ifndef RF_DAEMON_H
#define RF_DAEMON_H

#include "config.h"
#include "node.h"

/*
 * Runs the daemon until SIGTERM/SIGINT has shut it down. cfg is Borrowed for the call; hooks
 * (may be NULL) is Copied. Returns the process exit status: 0 after a graceful shutdown,
 * 1 when the node could not start (data dir locked or unusable, address in use, ...).
 */
int rf_daemon_run(const struct rf_config *cfg, const struct rf_leader_hooks *hooks);

#endif
