/* libguard: coroutine-native PostgreSQL data layer. Include this one header. */
#ifndef LIBGUARD_H
#define LIBGUARD_H

#include "libguard/alloc.h"
#include "libguard/cache.h"
#include "libguard/conn.h"
#include "libguard/db.h"
#include "libguard/error.h"
#include "libguard/migrate.h"
#include "libguard/model.h"
#include "libguard/param.h"
#include "libguard/pool.h"
#include "libguard/query.h"
#include "libguard/redis.h"
#include "libguard/result.h"
#include "libguard/runtime.h"

#endif
