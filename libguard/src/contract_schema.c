/*
 * The contract's PostgreSQL side (contract.h, docs/data-contract.md).
 *
 * - lifeguard.version_seq: one global sequence. A BEFORE ROW trigger stamps lg_version on
 *   every INSERT/UPDATE, and the BEFORE DELETE capture records deletes with a fresh value.
 *   PostgreSQL locks an existing row before BEFORE ROW triggers run, so per row the versions
 *   of UPDATE and DELETE grow in commit order; TRUNCATE takes a fresh value too. One race is
 *   left: an INSERT stamps its version before its unique check waits for a concurrent DELETE
 *   of the same key, so in that microsecond window the re-inserted row can carry a lower
 *   version than the delete. The reflector then leaves a tombstone (and a fence) above the
 *   live row until they expire: readers see misses and read the primary, never an old row.
 * - lifeguard.outbox: the durable record of changes, one row per change: table
 *   ("schema.table"), the primary key as a JSON array of canonical key texts, op (I, U, D, T)
 *   and version. The capture trigger inserts it and sends NOTIFY lifeguard '<schema.table>':
 *   the outbox is the record, the notification only a wake-up, and PostgreSQL folds identical
 *   notifications of one transaction into one. A primary-key change is recorded as D (old
 *   key) + I (new).
 * - Canonical key text: lifeguard.reflect() writes one capture function per table,
 *   lifeguard.capture_<table oid>(), that renders each key column with format('%s') (the
 *   type's output function). When a key column's type prints differently under other session
 *   settings (anything but integers, numeric, text types, uuid, boolean, name, oid), the
 *   function carries the contract's SET clauses, so the writer's TimeZone, DateStyle,
 *   IntervalStyle, extra_float_digits or bytea_output never reach the key. lifeguard.key_text
 *   and lifeguard.key_in render and parse key text for reads under the same clauses.
 * - TRUNCATE is captured by a statement trigger (op T, pk NULL).
 * - lifeguard.reflect(regclass) installs all of it on a table, idempotently, and refuses
 *   tables without a primary key. lifeguard.upgrade() re-runs it for every table whose capture
 *   is not this contract's (an older version's generic trigger, or a function written for
 *   other columns), rewriting the table's pending outbox keys into the canonical form first,
 *   and drops capture functions no trigger uses any more.
 */
#include <stddef.h>

#include "contract.h"

/* The body marker upgrade() looks for in a capture function. */
#define CAPTURE_MARK "lifeguard contract " LG__CONTRACT_VERSION

/* Tables whose capture is missing the current marker or names another function. */
#define OUTDATED_CAPTURE                                                                           \
	" FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid"                                    \
	" WHERE g.tgname = 'lg_capture_row' AND NOT g.tgisinternal"                                \
	" AND (p.proname <> 'capture_' || g.tgrelid::oid::text"                                    \
	"      OR p.prosrc NOT LIKE '%" CAPTURE_MARK "%')"

const char *const lg__contract_setup_sql[] = {
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

    "CREATE OR REPLACE FUNCTION lifeguard.contract_version() RETURNS int"
    " LANGUAGE sql IMMUTABLE AS $lg$ SELECT " LG__CONTRACT_VERSION " $lg$",

    /* The canonical text of a key value. */
    "CREATE OR REPLACE FUNCTION lifeguard.key_text(v anyelement) RETURNS text"
    " LANGUAGE sql STABLE PARALLEL SAFE " LG__CONTRACT_KEY_SETTINGS
    " AS $lg$ SELECT format('%s', v) $lg$",

    /* A key spelled as text, parsed as the type of hint under the same settings. */
    "CREATE OR REPLACE FUNCTION lifeguard.key_in(v text, hint anyelement) RETURNS anyelement"
    " LANGUAGE plpgsql STABLE PARALLEL SAFE " LG__CONTRACT_KEY_SETTINGS
    " AS $lg$ BEGIN hint := v; RETURN hint; END $lg$",

    "CREATE OR REPLACE FUNCTION lifeguard.stamp_version() RETURNS trigger"
    " LANGUAGE plpgsql AS $lg$"
    " BEGIN"
    "   NEW.lg_version := nextval('lifeguard.version_seq');"
    "   RETURN NEW;"
    " END $lg$",

    "CREATE OR REPLACE FUNCTION lifeguard.record(tbl text, key jsonb, op \"char\", v bigint)"
    " RETURNS void LANGUAGE plpgsql AS $lg$"
    " BEGIN"
    "   INSERT INTO lifeguard.outbox (table_name, pk, op, version) VALUES (tbl, key, op, v);"
    "   PERFORM pg_notify('lifeguard', tbl);"
    " END $lg$",

    "CREATE OR REPLACE FUNCTION lifeguard.capture_truncate() RETURNS trigger"
    " LANGUAGE plpgsql AS $lg$"
    " BEGIN"
    "   PERFORM lifeguard.record(quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME),"
    "                            NULL, 'T', nextval('lifeguard.version_seq'));"
    "   RETURN NULL;"
    " END $lg$",

    /* The capture function of one table; deletes are captured BEFORE the row goes: PostgreSQL
     * has locked it by then, so the version is taken in lock order (an AFTER ROW trigger
     * fires only at the end of the statement, by when a concurrent INSERT of the same key may
     * have stamped a lower one). An update's old-key delete takes the version stamped while
     * the row was locked. */
    "CREATE OR REPLACE FUNCTION lifeguard.capture_ddl(t regclass, cols text[], fixed boolean)"
    " RETURNS text LANGUAGE plpgsql STABLE AS $lg$"
    " DECLARE new_key text; old_key text;"
    " BEGIN"
    "   SELECT 'jsonb_build_array(' || string_agg(format('format(''%%s'', NEW.%I)', c), ', '"
    "          ORDER BY o) || ')',"
    "          'jsonb_build_array(' || string_agg(format('format(''%%s'', OLD.%I)', c), ', '"
    "          ORDER BY o) || ')'"
    "     INTO new_key, old_key FROM unnest(cols) WITH ORDINALITY AS u(c, o);"
    "   RETURN format($f$CREATE OR REPLACE FUNCTION lifeguard.%I() RETURNS trigger"
    "     LANGUAGE plpgsql %s AS $c$"
    "     DECLARE"
    "       tbl text := quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME);"
    "       old_key jsonb; new_key jsonb;"
    "     BEGIN"
    "       -- " CAPTURE_MARK "\n"
    "       IF TG_OP = 'DELETE' THEN"
    "         PERFORM lifeguard.record(tbl, %s, 'D', nextval('lifeguard.version_seq'));"
    "         RETURN OLD;"
    "       END IF;"
    "       new_key := %s;"
    "       IF TG_OP = 'UPDATE' THEN"
    "         old_key := %s;"
    "         IF old_key IS DISTINCT FROM new_key THEN"
    "           PERFORM lifeguard.record(tbl, old_key, 'D', NEW.lg_version);"
    "           PERFORM lifeguard.record(tbl, new_key, 'I', NEW.lg_version);"
    "         ELSE"
    "           PERFORM lifeguard.record(tbl, new_key, 'U', NEW.lg_version);"
    "         END IF;"
    "       ELSE"
    "         PERFORM lifeguard.record(tbl, new_key, 'I', NEW.lg_version);"
    "       END IF;"
    "       RETURN NULL;"
    "     END $c$$f$,"
    "     'capture_' || t::oid::text,"
    "     CASE WHEN fixed THEN '' ELSE $s$" LG__CONTRACT_KEY_SETTINGS "$s$ END,"
    "     old_key, new_key, old_key);"
    " END $lg$",

    /* Returns the key columns it installed capture for, e.g. {tenant,id}. */
    "CREATE OR REPLACE FUNCTION lifeguard.reflect(t regclass) RETURNS text[]"
    " LANGUAGE plpgsql AS $lg$"
    " DECLARE"
    "   cols text[];"
    "   fixed boolean;"
    "   fn text := 'lifeguard.capture_' || t::oid::text;"
    "   f text;"
    " BEGIN"
    "   SELECT array_agg(a.attname::text ORDER BY k.o),"
    "          bool_and(a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,"
    "            'numeric'::regtype, 'text'::regtype, 'varchar'::regtype, 'bpchar'::regtype,"
    "            'uuid'::regtype, 'bool'::regtype, 'name'::regtype, 'oid'::regtype))"
    "     INTO cols, fixed"
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
    /* ALTER TABLE locks the table exclusively even when the column exists: only when needed. */
    "   IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = t"
    "                  AND attname = 'lg_version' AND NOT attisdropped) THEN"
    "     EXECUTE format('ALTER TABLE %s ADD COLUMN lg_version bigint', t);"
    "   END IF;"
    "   EXECUTE lifeguard.capture_ddl(t, cols, fixed);"
    "   EXECUTE format('DROP TRIGGER IF EXISTS lg_stamp_version ON %s', t);"
    "   EXECUTE format('CREATE TRIGGER lg_stamp_version BEFORE INSERT OR UPDATE ON %s"
    "     FOR EACH ROW EXECUTE FUNCTION lifeguard.stamp_version()', t);"
    "   EXECUTE format('DROP TRIGGER IF EXISTS lg_capture_row ON %s', t);"
    "   EXECUTE format('CREATE TRIGGER lg_capture_row AFTER INSERT OR UPDATE ON %s"
    "     FOR EACH ROW EXECUTE FUNCTION %s()', t, fn);"
    "   EXECUTE format('DROP TRIGGER IF EXISTS lg_capture_delete ON %s', t);"
    "   EXECUTE format('CREATE TRIGGER lg_capture_delete BEFORE DELETE ON %s"
    "     FOR EACH ROW EXECUTE FUNCTION %s()', t, fn);"
    "   EXECUTE format('DROP TRIGGER IF EXISTS lg_capture_truncate ON %s', t);"
    "   EXECUTE format('CREATE TRIGGER lg_capture_truncate AFTER TRUNCATE ON %s"
    "     FOR EACH STATEMENT EXECUTE FUNCTION lifeguard.capture_truncate()', t);"
    /* Capture functions of dropped tables, and the generic ones of older versions: trigger
     * functions without arguments. The name comes from the catalog row itself: a reflect()
     * running beside this one may drop a function after this scan saw it, and anything that
     * looks it up by oid (regprocedure, pg_get_function_identity_arguments) would then print
     * a bare number. */
    "   FOR f IN SELECT format('lifeguard.%I()', p.proname) FROM pg_proc p"
    "     WHERE p.pronamespace = 'lifeguard'::regnamespace AND p.pronargs = 0"
    "       AND p.proname ~ '^(capture_[0-9]+|capture_row|capture_delete)$'"
    "       AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgfoid = p.oid) LOOP"
    "     EXECUTE format('DROP FUNCTION IF EXISTS %s', f);"
    "   END LOOP;"
    "   RETURN cols;"
    " END $lg$",

    /* Pending outbox rows of t recorded by an older capture (key text in the writer's
     * settings) rewritten in canonical text; rows whose text does not parse stay as they are
     * (the reflector dead-letters them). */
    "CREATE OR REPLACE FUNCTION lifeguard.recanon_outbox(t regclass) RETURNS void"
    " LANGUAGE plpgsql AS $lg$"
    " DECLARE expr text;"
    " BEGIN"
    "   SELECT 'jsonb_build_array(' || string_agg(format("
    "            'lifeguard.key_text(CAST(lifeguard.key_in(o.pk->>%s, NULL::%s) AS %s))',"
    "            k.o - 1, format_type(a.atttypid, a.atttypmod),"
    "            format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY k.o) || ')'"
    "     INTO expr"
    "   FROM pg_index i"
    "   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, o)"
    "   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
    "   WHERE i.indrelid = t AND i.indisprimary;"
    "   IF expr IS NULL THEN RETURN; END IF;"
    "   BEGIN"
    "     EXECUTE format('UPDATE lifeguard.outbox o SET pk = %s WHERE o.table_name = %L"
    "       AND o.pk IS NOT NULL', expr,"
    "       (SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
    "        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = t));"
    "   EXCEPTION WHEN data_exception THEN"
    "     RAISE WARNING 'lifeguard.upgrade: pending keys of % kept as recorded: %', t, SQLERRM;"
    "   END;"
    " END $lg$",

    /* Replaces outdated capture on every reflected table; returns how many it upgraded. */
    "CREATE OR REPLACE FUNCTION lifeguard.upgrade() RETURNS int"
    " LANGUAGE plpgsql AS $lg$"
    " DECLARE t regclass; n int := 0;"
    " BEGIN"
    "   FOR t IN SELECT g.tgrelid::regclass" OUTDATED_CAPTURE " LOOP"
    "     PERFORM lifeguard.recanon_outbox(t);"
    "     PERFORM lifeguard.reflect(t);"
    "     n := n + 1;"
    "   END LOOP;"
    /* The helper of the generic capture of older versions, once nothing calls it. */
    "   IF NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'lifeguard'::regnamespace"
    "                  AND p.proname IN ('capture_row', 'capture_delete')) THEN"
    "     DROP FUNCTION IF EXISTS lifeguard.row_key(jsonb, text[]);"
    "   END IF;"
    "   RETURN n;"
    " END $lg$",

    "SELECT lifeguard.upgrade()",
    NULL,
};

const char lg__contract_needs_setup_sql[] =
    "SELECT NOT EXISTS (SELECT 1 FROM pg_proc p"
    "   WHERE p.pronamespace = to_regnamespace('lifeguard') AND p.proname = 'contract_version'"
    "   AND p.prosrc = ' SELECT " LG__CONTRACT_VERSION " ')"
    " OR EXISTS (SELECT 1" OUTDATED_CAPTURE ")";

const char lg__contract_reflect_sql[] = "SELECT lifeguard.reflect($1::regclass)::text";
