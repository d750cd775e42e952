/*
 * Compiled, never run, by tests/typecheck/meson.build: column identifiers are typed per
 * model. Built as is it must compile (the control); with one of the WRONG_* macros defined
 * it passes a column of another model at one call site and the compiler must reject it.
 * Both models have an int8 column at index 1, so only the column's type can tell them apart.
 */
#include <libguard/model.h>
#include <libguard/query.h>

#define ACCOUNT_COLUMNS(X)                                                                         \
	X(account, id, LG_INT64, LG_COL_PK)                                                        \
	X(account, owner_id, LG_INT64, 0)                                                          \
	X(account, name, LG_TEXT, 0)
LG_MODEL_DECLARE(account, ACCOUNT_COLUMNS);

#define PERSON_COLUMNS(X)                                                                          \
	X(person, id, LG_INT64, LG_COL_PK)                                                         \
	X(person, age, LG_INT64, 0)
LG_MODEL_DECLARE(person, PERSON_COLUMNS);

#if defined(WRONG_FILTER)
#define FILTER_COL person_col_age
#else
#define FILTER_COL account_col_owner_id
#endif

#if defined(WRONG_ORDER)
#define ORDER_COL person_col_id
#else
#define ORDER_COL account_col_id
#endif

#if defined(WRONG_RELATED)
#define RELATED_COL person_col_age
#else
#define RELATED_COL account_col_owner_id
#endif

int typed_columns(const struct lg_db *db, const void *people, size_t n, struct lg_rows *out);

int typed_columns(const struct lg_db *db, const void *people, size_t n, struct lg_rows *out)
{
	struct lg_query q;
	lg_query_init(&q, &account_model);
	account_query_eq(&q, FILTER_COL, lg_param_int64(7));
#if defined(WRONG_UNTYPED)
	/* The untyped entry point takes an index, not a typed column. */
	lg_query_order(&q, account_col_name, false);
#else
	lg_query_order(&q, account_col_index(account_col_name), false);
#endif
	account_query_order(&q, ORDER_COL, true);
	lg_query_select(&q, LG_COL(account_col_id) | LG_COL(account_col_name));
	int rc = lg_query_all(db, &q, out, NULL);
	lg_query_close(&q);
	if (rc == 0) {
		rc = LG_MODEL_LOAD_RELATED(db, account, RELATED_COL, person, people, n,
					   person_col_id, out, NULL);
	}
	return rc;
}
