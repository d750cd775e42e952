/*
 * libguard error codes.
 *
 * Every fallible libguard function returns int: 0 on success or one of the positive LG_E*
 * codes below. Details (SQLSTATE, server or system message) go into an optional
 * struct lg_error supplied by the caller; filling it never allocates.
 */
#ifndef LIBGUARD_ERROR_H
#define LIBGUARD_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LG_BUILDING_LIBRARY)
#define LG_API __attribute__((visibility("default")))
#else
#define LG_API
#endif

/* X(name, message): one table generates the enum and lg_strerror(). */
#define LG_ERRORS(X)                                                                               \
	X(ENOMEM, "out of memory")                                                                 \
	X(EINVAL, "invalid argument")                                                              \
	X(ETIMEDOUT, "deadline exceeded")                                                          \
	X(ECANCELED, "canceled")                                                                   \
	X(ERESOLVE, "name resolution failed")                                                      \
	X(ECONNECT, "connection failed")                                                           \
	X(ECONNLOST, "connection lost")                                                            \
	X(ENOTSENT, "connection lost before the statement was sent (not executed)")                \
	X(ECLOSED, "closed")                                                                       \
	X(ESERVER, "server reported an error")                                                     \
	X(EPROTO, "protocol error")                                                                \
	X(ENOTCORO, "not inside a coroutine")                                                      \
	X(EBUSY, "busy")                                                                           \
	X(ENULL, "value is NULL")                                                                  \
	X(ETYPE, "column type does not match the requested C type")                                \
	X(ERANGE, "value out of range")                                                            \
	X(ENOTFOUND, "not found")                                                                  \
	X(ESYS, "system call failed")                                                              \
	X(EUNKNOWN, "sent, outcome unknown (deadline, cancel or close after sending)")

enum lg_errno {
	LG_OK = 0,
#define LG__ERR_ENUM(name, msg) LG_##name,
	LG_ERRORS(LG__ERR_ENUM)
#undef LG__ERR_ENUM
	    LG__ERR_COUNT
};

/* Size of the message buffer in struct lg_error, terminating NUL included. */
#define LG_ERROR_MSG_SIZE 512

/*
 * Details of a failure. code repeats the returned LG_E* value; sqlstate is the five-character
 * SQLSTATE for server errors ("" otherwise); message is a human-readable sentence with context,
 * truncated to fit, never ending in a newline.
 */
struct lg_error {
	int code;
	char sqlstate[6];
	char message[LG_ERROR_MSG_SIZE];
};

/* Returns a static description of code; unknown codes give "unknown error". */
LG_API const char *lg_strerror(int code);

/*
 * What a failed statement did. Not executed (safe to send again): LG_ENOTSENT, and
 * LG_ETIMEDOUT / LG_ECANCELED (the deadline passed, or the caller was canceled, before it was
 * sent), LG_EINVAL, LG_ECLOSED. Outcome unknown (it was sent and never confirmed: it may or
 * may not have taken effect; never re-sent by libguard): LG_EUNKNOWN (deadline, cancel or
 * close after sending) and LG_ECONNLOST (the connection died with it in flight).
 */
LG_API int lg_error_outcome_unknown(int code);

/* Resets err (NULL allowed) to "no error". */
LG_API void lg_error_clear(struct lg_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LIBGUARD_ERROR_H */
