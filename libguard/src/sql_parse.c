/*
 * Statement verdicts from PostgreSQL's parser (libpg_query's JSON parse tree, read with
 * jansson).
 *
 * Happy path:
 *   1. A thread with a large stack (LG__SQL_PARSE_STACK, committed only as touched) runs
 *      pg_query_parse, loads the JSON tree and walks it; the caller joins it.
 *   2. The top-level statement gives the kind and its own effects (a table below).
 *   3. A walk over the whole tree adds what nested parts do: data-modifying statements in
 *      WITH, SELECT INTO, locking clauses, temporary relations and calls of functions with
 *      side effects or session state (set_config, advisory locks, nextval ...).
 *
 * Failure modes, all giving LG__SQL_UNPARSED with a reason (never an error: the server still
 * gets the text and reports its own syntax errors):
 *   - text longer than LG__SQL_PARSE_MAX: not parsed (stack bound, see below);
 *   - a syntax error, or a tree nested deeper than jansson loads (2,048 levels);
 *   - no memory, or no thread.
 *
 * The stack bound was measured on x86-64: pg_query_parse of "SELECT 1+1+...+1" needs about
 * 70 bytes of stack per byte of text (an 8 MiB stack holds 120 KB of it and crashes at 160
 * KB). 64 MiB over 256 KiB of text leaves a margin of more than three.
 *
 * Functions we cannot see into (user functions, procedures) are not judged: a statement that
 * the caller marks as a shareable read and that calls a user function which writes is the
 * caller's mistake, which this parser cannot catch.
 */
#include "sql_parse.h"

#include <jansson.h>
#include <pg_query.h>
#include <pthread.h>
#include <string.h>

#define LG__SQL_PARSE_STACK (64u * 1024u * 1024u)

struct walk {
	uint16_t flags;
	const char *why;
};

static void walk_mark(struct walk *w, unsigned flags, const char *why)
{
	w->flags |= (uint16_t)flags;
	if (w->why == NULL) {
		w->why = why;
	}
}

/* Functions known by name: the last element of the (possibly schema-qualified) name. */
struct func_rule {
	const char *name;
	unsigned flags;
	const char *why;
};

#define SESSION_LOCK "session advisory locks outlive the statement"
#define SIDE_EFFECT  "calls a function with side effects"

static const struct func_rule func_rules[] = {
    {"pg_advisory_lock", LG__SQL_SESSION_FX, SESSION_LOCK},
    {"pg_advisory_lock_shared", LG__SQL_SESSION_FX, SESSION_LOCK},
    {"pg_try_advisory_lock", LG__SQL_SESSION_FX, SESSION_LOCK},
    {"pg_try_advisory_lock_shared", LG__SQL_SESSION_FX, SESSION_LOCK},
    {"pg_advisory_unlock", LG__SQL_SESSION_FX, SESSION_LOCK},
    {"pg_advisory_unlock_shared", LG__SQL_SESSION_FX, SESSION_LOCK},
    {"pg_advisory_unlock_all", LG__SQL_SESSION_FX, SESSION_LOCK},
    {"pg_advisory_xact_lock", LG__SQL_LOCKS, "takes a transaction advisory lock"},
    {"pg_advisory_xact_lock_shared", LG__SQL_LOCKS, "takes a transaction advisory lock"},
    {"pg_try_advisory_xact_lock", LG__SQL_LOCKS, "takes a transaction advisory lock"},
    {"pg_try_advisory_xact_lock_shared", LG__SQL_LOCKS, "takes a transaction advisory lock"},
    {"nextval", LG__SQL_WRITES, "nextval() advances a sequence"},
    {"setval", LG__SQL_WRITES, "setval() sets a sequence"},
    {"pg_notify", LG__SQL_WRITES, "pg_notify() sends a notification"},
    {"txid_current", LG__SQL_WRITES, "txid_current() assigns a transaction id"},
    {"pg_current_xact_id", LG__SQL_WRITES, "pg_current_xact_id() assigns a transaction id"},
    {"pg_terminate_backend", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_cancel_backend", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_reload_conf", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_rotate_logfile", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_switch_wal", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_create_restore_point", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_create_physical_replication_slot", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_create_logical_replication_slot", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_drop_replication_slot", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_logical_emit_message", LG__SQL_WRITES, SIDE_EFFECT},
    {"pg_stat_reset", LG__SQL_WRITES, SIDE_EFFECT},
    {"dblink_exec", LG__SQL_WRITES, SIDE_EFFECT},
};

static const char *node_sval(json_t *node)
{
	return json_string_value(json_object_get(json_object_get(node, "String"), "sval"));
}

/* set_config(name, value, is_local): only a literal true keeps it inside the transaction. */
static void walk_set_config(struct walk *w, json_t *args)
{
	json_t *c = json_object_get(json_array_get(args, 2), "A_Const");
	json_t *b = c != NULL ? json_object_get(c, "boolval") : NULL;
	if (b == NULL) {
		walk_mark(w, LG__SQL_SESSION_FX,
			  "set_config() with a non-literal is_local may "
			  "change the session");
	} else if (json_is_true(json_object_get(b, "boolval"))) {
		walk_mark(w, LG__SQL_TX_STATE, "set_config(.., true) sets a transaction setting");
	} else {
		walk_mark(w, LG__SQL_SESSION_FX, "set_config(.., false) changes the session");
	}
}

static void walk_func(struct walk *w, json_t *call)
{
	json_t *names = json_object_get(call, "funcname");
	const char *name = node_sval(json_array_get(names, json_array_size(names) - 1));
	if (name == NULL) {
		return;
	}
	if (strcmp(name, "set_config") == 0) {
		walk_set_config(w, json_object_get(call, "args"));
		return;
	}
	if (strncmp(name, "lo_", 3) == 0 || strncmp(name, "pg_stat_reset", 13) == 0) {
		walk_mark(w, LG__SQL_WRITES, SIDE_EFFECT);
		return;
	}
	for (size_t i = 0; i < sizeof(func_rules) / sizeof(func_rules[0]); i++) {
		if (strcmp(name, func_rules[i].name) == 0) {
			walk_mark(w, func_rules[i].flags, func_rules[i].why);
			return;
		}
	}
}

static void walk_tree(struct walk *w, json_t *v);

static void walk_object(struct walk *w, json_t *o)
{
	const char *key;
	json_t *x;
	const char *persistence = json_string_value(json_object_get(o, "relpersistence"));
	if (persistence != NULL && strcmp(persistence, "t") == 0) {
		walk_mark(w, LG__SQL_SESSION_FX,
			  "a temporary relation lives as long as the session");
	}
	json_object_foreach(o, key, x)
	{
		if (strcmp(key, "InsertStmt") == 0 || strcmp(key, "UpdateStmt") == 0 ||
		    strcmp(key, "DeleteStmt") == 0 || strcmp(key, "MergeStmt") == 0) {
			walk_mark(w, LG__SQL_WRITES, "a data-modifying statement inside WITH");
		} else if (strcmp(key, "intoClause") == 0) {
			walk_mark(w, LG__SQL_WRITES, "SELECT INTO creates a table");
		} else if (strcmp(key, "lockingClause") == 0) {
			walk_mark(w, LG__SQL_LOCKS, "FOR UPDATE/SHARE locks rows");
		} else if (strcmp(key, "FuncCall") == 0) {
			walk_func(w, x);
		}
		walk_tree(w, x);
	}
}

static void walk_tree(struct walk *w, json_t *v)
{
	if (json_is_object(v)) {
		walk_object(w, v);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			walk_tree(w, x);
		}
	}
}

/* Top-level statements by node name. Anything not listed is DDL that writes. */
struct stmt_rule {
	const char *node;
	uint8_t kind;
	unsigned flags;
	const char *why;
};

static const struct stmt_rule stmt_rules[] = {
    {"SelectStmt", LG__SQL_READ, 0, NULL},
    {"VariableShowStmt", LG__SQL_READ, 0, NULL},
    {"ExplainStmt", LG__SQL_READ, 0, NULL},
    {"InsertStmt", LG__SQL_DML, LG__SQL_WRITES, "INSERT writes"},
    {"UpdateStmt", LG__SQL_DML, LG__SQL_WRITES, "UPDATE writes"},
    {"DeleteStmt", LG__SQL_DML, LG__SQL_WRITES, "DELETE writes"},
    {"MergeStmt", LG__SQL_DML, LG__SQL_WRITES, "MERGE writes"},
    {"TransactionStmt", LG__SQL_TRANSACTION, LG__SQL_TX_CONTROL, "transaction control"},
    {"VariableSetStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "SET changes the session"},
    {"ListenStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "LISTEN changes the session"},
    {"UnlistenStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "UNLISTEN changes the session"},
    {"PrepareStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "PREPARE changes the session"},
    {"DeallocateStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "DEALLOCATE changes the session"},
    {"DiscardStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "DISCARD changes the session"},
    {"LoadStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "LOAD changes the session"},
    {"DeclareCursorStmt", LG__SQL_SESSION, LG__SQL_TX_STATE, "DECLARE opens a cursor"},
    {"FetchStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "FETCH/MOVE use a session cursor"},
    {"ClosePortalStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX, "CLOSE ends a session cursor"},
    {"ExecuteStmt", LG__SQL_SESSION, LG__SQL_SESSION_FX | LG__SQL_OPAQUE | LG__SQL_WRITES,
     "EXECUTE runs a statement prepared in the session"},
    {"CopyStmt", LG__SQL_UTILITY, LG__SQL_COPY | LG__SQL_WRITES,
     "COPY cannot run on a pipelined connection"},
    {"CallStmt", LG__SQL_UTILITY, LG__SQL_OPAQUE | LG__SQL_WRITES, "CALL runs a procedure"},
    {"DoStmt", LG__SQL_UTILITY, LG__SQL_OPAQUE | LG__SQL_WRITES, "DO runs procedural code"},
    {"LockStmt", LG__SQL_UTILITY, LG__SQL_LOCKS, "LOCK locks a table"},
    {"NotifyStmt", LG__SQL_UTILITY, LG__SQL_WRITES, "NOTIFY sends a notification"},
    {"VacuumStmt", LG__SQL_UTILITY, LG__SQL_WRITES, "VACUUM/ANALYZE write statistics"},
    {"CheckPointStmt", LG__SQL_UTILITY, LG__SQL_NO_TXBLOCK, "CHECKPOINT"},
    {"CreatedbStmt", LG__SQL_DDL, LG__SQL_WRITES | LG__SQL_NO_TXBLOCK, "CREATE DATABASE"},
    {"DropdbStmt", LG__SQL_DDL, LG__SQL_WRITES | LG__SQL_NO_TXBLOCK, "DROP DATABASE"},
    {"AlterSystemStmt", LG__SQL_DDL, LG__SQL_WRITES | LG__SQL_NO_TXBLOCK, "ALTER SYSTEM"},
    {"CreateTableSpaceStmt", LG__SQL_DDL, LG__SQL_WRITES | LG__SQL_NO_TXBLOCK, "TABLESPACE"},
    {"DropTableSpaceStmt", LG__SQL_DDL, LG__SQL_WRITES | LG__SQL_NO_TXBLOCK, "TABLESPACE"},
    {"CreateSubscriptionStmt", LG__SQL_DDL, LG__SQL_WRITES | LG__SQL_NO_TXBLOCK, "SUBSCRIPTION"},
    {"AlterSubscriptionStmt", LG__SQL_DDL, LG__SQL_WRITES | LG__SQL_NO_TXBLOCK, "SUBSCRIPTION"},
    {"DropSubscriptionStmt", LG__SQL_DDL, LG__SQL_WRITES | LG__SQL_NO_TXBLOCK, "SUBSCRIPTION"},
};

static bool defelem_true(json_t *options, const char *name)
{
	size_t i;
	json_t *o;
	json_array_foreach(options, i, o)
	{
		json_t *d = json_object_get(o, "DefElem");
		const char *dn = json_string_value(json_object_get(d, "defname"));
		if (dn == NULL || strcmp(dn, name) != 0) {
			continue;
		}
		const char *arg = node_sval(json_object_get(d, "arg"));
		return arg == NULL || (strcmp(arg, "false") != 0 && strcmp(arg, "off") != 0 &&
				       strcmp(arg, "0") != 0 && strcmp(arg, "no") != 0);
	}
	return false;
}

/* Effects that depend on the statement's own fields. Returns false when the nested tree
 * must not be walked (EXPLAIN without ANALYZE does not execute its statement). */
static bool stmt_details(const char *node, json_t *s, struct walk *w)
{
	if (strcmp(node, "ExplainStmt") == 0) {
		return defelem_true(json_object_get(s, "options"), "analyze");
	}
	if (strcmp(node, "TransactionStmt") == 0) {
		const char *k = json_string_value(json_object_get(s, "kind"));
		if (k != NULL && (strcmp(k, "TRANS_STMT_COMMIT_PREPARED") == 0 ||
				  strcmp(k, "TRANS_STMT_ROLLBACK_PREPARED") == 0)) {
			w->flags |= LG__SQL_NO_TXBLOCK;
		}
	} else if (strcmp(node, "VariableSetStmt") == 0) {
		const char *name = json_string_value(json_object_get(s, "name"));
		if (json_is_true(json_object_get(s, "is_local"))) {
			w->flags = LG__SQL_TX_STATE;
			w->why = "SET LOCAL sets a transaction setting";
		} else if (name != NULL && strcmp(name, "TRANSACTION") == 0) {
			w->flags = LG__SQL_TX_STATE;
			w->why = "SET TRANSACTION sets the transaction's characteristics";
		}
	} else if (strcmp(node, "DeclareCursorStmt") == 0) {
		/* CURSOR_OPT_HOLD (parsenodes.h): the cursor outlives the transaction. */
		if (json_integer_value(json_object_get(s, "options")) & 0x20) {
			walk_mark(w, LG__SQL_SESSION_FX,
				  "a cursor WITH HOLD outlives the transaction");
		}
	} else if (strcmp(node, "VacuumStmt") == 0) {
		if (json_is_true(json_object_get(s, "is_vacuumcmd"))) {
			w->flags |= LG__SQL_NO_TXBLOCK;
		}
	} else if (((strcmp(node, "IndexStmt") == 0 || strcmp(node, "DropStmt") == 0) &&
		    json_is_true(json_object_get(s, "concurrent"))) ||
		   (strcmp(node, "ReindexStmt") == 0 &&
		    (defelem_true(json_object_get(s, "params"), "concurrently") ||
		     json_object_get(s, "relation") == NULL)) ||
		   (strcmp(node, "ClusterStmt") == 0 && json_object_get(s, "relation") == NULL)) {
		/* CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY or of a whole database or
		 * system, CLUSTER of every table. */
		w->flags |= LG__SQL_NO_TXBLOCK;
	}
	return true;
}

static struct lg__sql_verdict verdict_of_stmt(json_t *stmt)
{
	struct lg__sql_verdict v = {LG__SQL_DDL, LG__SQL_WRITES, "changes the schema"};
	const char *node = json_object_iter_key(json_object_iter(stmt));
	json_t *s = json_object_iter_value(json_object_iter(stmt));
	if (node == NULL) {
		return v;
	}
	for (size_t i = 0; i < sizeof(stmt_rules) / sizeof(stmt_rules[0]); i++) {
		if (strcmp(node, stmt_rules[i].node) == 0) {
			v.kind = stmt_rules[i].kind;
			v.flags = (uint16_t)stmt_rules[i].flags;
			v.why = stmt_rules[i].why;
			break;
		}
	}
	struct walk w = {v.flags, v.why};
	if (stmt_details(node, s, &w)) {
		walk_tree(&w, s);
	}
	v.flags = w.flags;
	v.why = w.why;
	return v;
}

static struct lg__sql_verdict verdict_unparsed(const char *why)
{
	struct lg__sql_verdict v = {LG__SQL_UNPARSED, 0, why};
	return v;
}

static struct lg__sql_verdict verdict_unchecked(const char *why)
{
	struct lg__sql_verdict v = {LG__SQL_UNPARSED, LG__SQL_UNCHECKED, why};
	return v;
}

static struct lg__sql_verdict verdict_of_tree(const char *tree)
{
	json_t *root = json_loads(tree, 0, NULL);
	json_t *stmts = json_object_get(root, "stmts");
	struct lg__sql_verdict v;
	if (!json_is_array(stmts)) {
		v = verdict_unchecked("the parse tree is nested too deeply to inspect");
	} else if (json_array_size(stmts) == 0) {
		v = (struct lg__sql_verdict){LG__SQL_EMPTY, 0, NULL};
	} else {
		v = verdict_of_stmt(json_object_get(json_array_get(stmts, 0), "stmt"));
		if (json_array_size(stmts) > 1) {
			for (size_t i = 1; i < json_array_size(stmts); i++) {
				json_t *st = json_object_get(json_array_get(stmts, i), "stmt");
				v.flags |= verdict_of_stmt(st).flags;
			}
			v.kind = LG__SQL_MULTI;
			v.why = "several statements in one text";
		}
	}
	json_decref(root);
	return v;
}

struct parse_job {
	const char *sql;
	struct lg__sql_verdict v;
};

static void *parse_thread(void *arg)
{
	struct parse_job *job = arg;
	PgQueryParseResult r = pg_query_parse(job->sql);
	job->v = r.error != NULL ? verdict_unparsed("PostgreSQL's parser rejects the text")
				 : verdict_of_tree(r.parse_tree);
	pg_query_free_parse_result(r);
	return NULL;
}

struct lg__sql_verdict lg__sql_parse(const char *sql)
{
	if (strlen(sql) > LG__SQL_PARSE_MAX) {
		return verdict_unchecked("the text is longer than 256 KiB, too long to inspect");
	}
	struct parse_job job = {sql, verdict_unchecked("no thread for the parser")};
	pthread_attr_t attr;
	pthread_t t;
	if (pthread_attr_init(&attr) != 0) {
		return job.v;
	}
	if (pthread_attr_setstacksize(&attr, LG__SQL_PARSE_STACK) == 0 &&
	    pthread_create(&t, &attr, parse_thread, &job) == 0) {
		pthread_join(t, NULL);
	}
	pthread_attr_destroy(&attr);
	return job.v;
}
