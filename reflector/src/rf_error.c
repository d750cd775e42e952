/* The reflector's outcome table (see rf_error.h). */
#include "rf_error.h"

static const char *const rf_error_messages[RF__ERR_COUNT] = {[RF_OK] = "success",
#define RF_ERR_MSG(name, msg) [RF_E##name] = msg,
							     RF_ERRORS(RF_ERR_MSG)
#undef RF_ERR_MSG
};

const char *rf_strerror(int code)
{
	if (code < 0 || code >= RF__ERR_COUNT) {
		return "unknown error";
	}
	return rf_error_messages[code];
}
