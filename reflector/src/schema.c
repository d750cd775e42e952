/*
 * The data contract's PostgreSQL side (docs/data-contract.md).
 *
 * - lifeguard.version_seq: one global sequence. A BEFORE ROW trigger stamps lg_version on
 *   every INSERT/UPDATE, and a BEFORE DELETE trigger records deletes with a fresh value.
 *   PostgreSQL locks an existing row before BEFORE ROW triggers run, so per row the versions
 *   of UPDATE and DELETE grow in commit order; TRUNCATE takes a fresh value too. One race is
 *   left: an INSERT stamps its version before its unique check waits for a concurrent DELETE
 *   of the same key, so in that microsecond window the re-inserted row can carry a lower
 *   version than the delete. The reflector then leaves a tombstone (and a fence) above the
 *   live row until they expire: readers see misses and read the primary, never an old row.
 * - lifeguard.outbox: the durable record of changes, one row per change: table
 *   ("schema.table"), the primary key as a JSON array of text values (so composite, text and
 *   uuid keys work), op (I, U, D, T) and version. The AFTER ROW trigger inserts it and sends
 *   NOTIFY lifeguard '<schema.table>': the outbox is the record, the notification only a
 *   wake-up, and PostgreSQL folds identical notifications of one transaction into one — a
 *   100k-row transaction sends one per table instead of 100k (a payload naming each outbox
 *   row would send them all). A primary-key change is recorded as D (old key) + I (new).
 * - TRUNCATE is captured by a statement trigger (op T, pk NULL).
 * - lifeguard.reflect(regclass) installs all of it on a table, idempotently, and refuses
 *   tables without a primary key.
 */
#include "schema.h"

#include <stddef.h>

const char *const rf_schema_setup_sql[] = {
    "CREATE SCHEMA IF NOT EXISTS lifeguard",

    "CREATE SEQUENCE IF NOT EXISTS lifeguard.version_seq",

    "CREATE TABLE IF NOT EXISTS lifeguard.outbox ("
    " id bigserial PRIMARY KEY,"
    " table_name text NOT NULL,"
    " pk jsonb,"
    " op \"char\" NOT NULL CHECK (op IN ('I', 'U', 'D', 'T')),"
    " version bigint NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT clock_timestamp())",

    /* Outbox rows the reflector could not process (malformed, table gone, key that does not
     * cast), with the reason: kept for inspection instead of being retried forever. */
    "CREATE TABLE IF NOT EXISTS lifeguard.outbox_dead ("
    " id bigint PRIMARY KEY,"
    " table_name text,"
    " pk jsonb,"
    " op \"char\","
    " version bigint,"
    " created_at timestamptz,"
    " reason text NOT NULL,"
    " rejected_at timestamptz NOT NULL DEFAULT clock_timestamp())",

    "CREATE OR REPLACE FUNCTION lifeguard.stamp_version() RETURNS trigger"
    " LANGUAGE plpgsql AS $lg$"
    " BEGIN"
    "   NEW.lg_version := nextval('lifeguard.version_seq');"
    "   RETURN NEW;"
    " END $lg$",

    /* The key as a JSON array of the text forms of the key columns (TG_ARGV, in order). */
    "CREATE OR REPLACE FUNCTION lifeguard.row_key(r jsonb, cols text[]) RETURNS jsonb"
    " LANGUAGE sql IMMUTABLE AS $lg$"
    "   SELECT jsonb_agg(r ->> c ORDER BY o) FROM unnest(cols) WITH ORDINALITY AS k(c, o)"
    " $lg$",

    "CREATE OR REPLACE FUNCTION lifeguard.record(tbl text, key jsonb, op \"char\", v bigint)"
    " RETURNS void LANGUAGE plpgsql AS $lg$"
    " DECLARE oid bigint;"
    " BEGIN"
    "   INSERT INTO lifeguard.outbox (table_name, pk, op, version)"
    "   VALUES (tbl, key, op, v) RETURNING id INTO oid;"
    "   PERFORM pg_notify('lifeguard', tbl);"
    " END $lg$",

    "CREATE OR REPLACE FUNCTION lifeguard.capture_row() RETURNS trigger"
    " LANGUAGE plpgsql AS $lg$"
    " DECLARE"
    "   tbl text := quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME);"
    "   old_key jsonb; new_key jsonb;"
    " BEGIN"
    "   IF TG_OP = 'INSERT' THEN"
    "     PERFORM lifeguard.record(tbl, lifeguard.row_key(to_jsonb(NEW), TG_ARGV),"
    "                              'I', NEW.lg_version);"
    "   ELSIF TG_OP = 'UPDATE' THEN"
    "     old_key := lifeguard.row_key(to_jsonb(OLD), TG_ARGV);"
    "     new_key := lifeguard.row_key(to_jsonb(NEW), TG_ARGV);"
    /* The old key's delete takes the version stamped while the row was locked. */
    "     IF old_key IS DISTINCT FROM new_key THEN"
    "       PERFORM lifeguard.record(tbl, old_key, 'D', NEW.lg_version);"
    "       PERFORM lifeguard.record(tbl, new_key, 'I', NEW.lg_version);"
    "     ELSE"
    "       PERFORM lifeguard.record(tbl, new_key, 'U', NEW.lg_version);"
    "     END IF;"
    "   END IF;"
    "   RETURN NULL;"
    " END $lg$",

    /* Deletes are captured BEFORE the row goes: PostgreSQL has locked it by then, so the
     * version is taken in lock order. An AFTER ROW trigger fires only at the end of the
     * statement, by when a concurrent INSERT of the same key may have stamped a lower one. */
    "CREATE OR REPLACE FUNCTION lifeguard.capture_delete() RETURNS trigger"
    " LANGUAGE plpgsql AS $lg$"
    " BEGIN"
    "   PERFORM lifeguard.record(quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME),"
    "                            lifeguard.row_key(to_jsonb(OLD), TG_ARGV),"
    "                            'D', nextval('lifeguard.version_seq'));"
    "   RETURN OLD;"
    " END $lg$",

    "CREATE OR REPLACE FUNCTION lifeguard.capture_truncate() RETURNS trigger"
    " LANGUAGE plpgsql AS $lg$"
    " BEGIN"
    "   PERFORM lifeguard.record(quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME),"
    "                            NULL, 'T', nextval('lifeguard.version_seq'));"
    "   RETURN NULL;"
    " END $lg$",

    /* Returns the key columns it installed capture for, e.g. {tenant,id}. */
    "CREATE OR REPLACE FUNCTION lifeguard.reflect(t regclass) RETURNS text[]"
    " LANGUAGE plpgsql AS $lg$"
    " DECLARE"
    "   cols text[];"
    "   args text;"
    " BEGIN"
    "   SELECT array_agg(a.attname::text ORDER BY k.o) INTO cols"
    "   FROM pg_index i"
    "   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, o)"
    "   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
    "   WHERE i.indrelid = t AND i.indisprimary;"
    "   IF cols IS NULL THEN"
    "     RAISE EXCEPTION 'lifeguard.reflect: table % has no primary key', t"
    "       USING ERRCODE = 'invalid_table_definition';"
    "   END IF;"
    "   IF 'lg_version' = ANY (cols) THEN"
    "     RAISE EXCEPTION 'lifeguard.reflect: lg_version cannot be part of the key of %', t;"
    "   END IF;"
    "   EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS lg_version bigint', t);"
    "   SELECT string_agg(quote_literal(c), ', ') INTO args FROM unnest(cols) AS c;"
    "   EXECUTE format('DROP TRIGGER IF EXISTS lg_stamp_version ON %s', t);"
    "   EXECUTE format('CREATE TRIGGER lg_stamp_version BEFORE INSERT OR UPDATE ON %s"
    "     FOR EACH ROW EXECUTE FUNCTION lifeguard.stamp_version()', t);"
    "   EXECUTE format('DROP TRIGGER IF EXISTS lg_capture_row ON %s', t);"
    "   EXECUTE format('CREATE TRIGGER lg_capture_row AFTER INSERT OR UPDATE ON %s"
    "     FOR EACH ROW EXECUTE FUNCTION lifeguard.capture_row(%s)', t, args);"
    "   EXECUTE format('DROP TRIGGER IF EXISTS lg_capture_delete ON %s', t);"
    "   EXECUTE format('CREATE TRIGGER lg_capture_delete BEFORE DELETE ON %s"
    "     FOR EACH ROW EXECUTE FUNCTION lifeguard.capture_delete(%s)', t, args);"
    "   EXECUTE format('DROP TRIGGER IF EXISTS lg_capture_truncate ON %s', t);"
    "   EXECUTE format('CREATE TRIGGER lg_capture_truncate AFTER TRUNCATE ON %s"
    "     FOR EACH STATEMENT EXECUTE FUNCTION lifeguard.capture_truncate()', t);"
    "   RETURN cols;"
    " END $lg$",
    NULL,
};
