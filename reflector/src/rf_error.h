/*
 * The reflector's outcome codes, one table (like libguard's error.h): each code once with the
 * sentence that explains it. The coherence pipeline's steps return them (coh_int.h: "worst
 * wins", so their order is their severity), and logs print rf_strerror().
 */
#ifndef RF_ERROR_H
#define RF_ERROR_H

/* X(NAME, sentence), in rising severity. */
#define RF_ERRORS(X)                                                                               \
	X(RETRY, "transient failure: the batch rolled back and is retried with backoff")           \
	X(STALE, "Redis holds a higher fencing token: take a new one")                             \
	X(DEPOSED, "this node no longer leads in the session's term")                              \
	X(CANCELED, "canceled: leadership lost or shutting down")

enum rf_err {
	RF_OK = 0,
#define RF_ERR_ENUM(name, msg) RF_E##name,
	RF_ERRORS(RF_ERR_ENUM)
#undef RF_ERR_ENUM
	    RF__ERR_COUNT
};

/* The sentence for code (RF_OK: "success"; anything else: "unknown error"). Static. */
const char *rf_strerror(int code);

#endif
