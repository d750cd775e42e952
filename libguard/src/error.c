/* Error table and the internal helpers that fill struct lg_error without allocating. */
#include "error_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const error_messages[LG__ERR_COUNT] = {[LG_OK] = "success",
#define ERR_MSG(name, msg) [LG_##name] = msg,
							  LG_ERRORS(ERR_MSG)
#undef ERR_MSG
};

LG_API const char *lg_strerror(int code)
{
	if (code < 0 || code >= LG__ERR_COUNT) {
		return "unknown error";
	}
	return error_messages[code];
}

LG_API void lg_error_clear(struct lg_error *err)
{
	if (err == NULL) {
		return;
	}
	err->code = 0;
	err->sqlstate[0] = '\0';
	err->message[0] = '\0';
}

static void error_trim(char *msg)
{
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' ')) {
		msg[--n] = '\0';
	}
}

int lg__error_set(struct lg_error *err, int code, const char *fmt, ...)
{
	if (err == NULL) {
		return code;
	}
	err->code = code;
	err->sqlstate[0] = '\0';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	error_trim(err->message);
	return code;
}

void lg__error_set_sqlstate(struct lg_error *err, const char *sqlstate)
{
	if (err == NULL) {
		return;
	}
	if (sqlstate == NULL) {
		err->sqlstate[0] = '\0';
		return;
	}
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate);
}

LG_API int lg_error_outcome_unknown(int code)
{
	return code == LG_EUNKNOWN || code == LG_ECONNLOST;
}
