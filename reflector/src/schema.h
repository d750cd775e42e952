/*
 * The lifeguard schema in PostgreSQL (outbox, version sequence, capture triggers): the
 * contract module owns the statements (libguard/src/contract_schema.c); these are the names
 * the reflector's commands use.
 */
#ifndef RF_SCHEMA_H
#define RF_SCHEMA_H

#include "contract.h"

/*
 * Statements of `lifeguard-reflector setup`, in order, NULL-terminated. Every one is
 * idempotent (IF NOT EXISTS / CREATE OR REPLACE), so setup can run again at any time, and the
 * whole list runs in one transaction under an advisory lock so concurrent setups serialize.
 * The last one upgrades capture triggers installed by older versions.
 */
#define rf_schema_setup_sql lg__contract_setup_sql

/* Key of the advisory lock taken by setup (pg_advisory_xact_lock). */
#define RF_SCHEMA_LOCK_KEY LG__CONTRACT_LOCK_KEY

/* Enables reflection of one table: SELECT lifeguard.reflect($1::regclass). */
#define RF_SCHEMA_REFLECT_SQL lg__contract_reflect_sql

#endif
