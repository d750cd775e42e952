/* The lifeguard schema in PostgreSQL: outbox, version sequence, capture triggers. */
#ifndef RF_SCHEMA_H
#define RF_SCHEMA_H

/*
 * Statements of `lifeguard-reflector setup`, in order, NULL-terminated. Every one is
 * idempotent (IF NOT EXISTS / CREATE OR REPLACE), so setup can run again at any time, and the
 * whole list runs in one transaction under an advisory lock so concurrent setups serialize.
 */
extern const char *const rf_schema_setup_sql[];

/* Key of the advisory lock taken by setup (pg_advisory_xact_lock). */
#define RF_SCHEMA_LOCK_KEY 7366437153012475121LL

/* Enables reflection of one table: SELECT lifeguard.reflect($1::regclass). */
#define RF_SCHEMA_REFLECT_SQL "SELECT lifeguard.reflect($1::regclass)::text"

#endif
