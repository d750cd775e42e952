/* The raft FSM: commands, their encoding, snapshot and restore. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fsm.h"
#include "log.h"

static void quiet(void)
{
	rf_log_setup(RF_LOG_ERROR, 0); /* rejected commands are logged as warnings */
}

TestSuite(fsm, .init = quiet);

static void *apply_buf(struct rf_fsm *fsm, const struct raft_buffer *buf)
{
	void *result = (void *)0x1234;
	cr_assert_eq(fsm->iface.apply(&fsm->iface, buf, &result), 0,
		     "apply must never fail (raft would stop applying)");
	return result;
}

static void *apply_text(struct rf_fsm *fsm, const char *text)
{
	struct raft_buffer buf = {(void *)text, strlen(text)};
	return apply_buf(fsm, &buf);
}

static void *apply_encoded(struct rf_fsm *fsm, int rc, struct raft_buffer *buf)
{
	cr_assert_eq(rc, 0);
	cr_assert_eq(buf->len % 8, 0, "raft 0.15 needs payloads padded to 8 bytes (len %zu)",
		     buf->len);
	void *result = apply_buf(fsm, buf);
	raft_free(buf->base);
	return result;
}

static struct rf_fsm_member member(uint64_t id, const char *raft, const char *http)
{
	struct rf_fsm_member m;
	memset(&m, 0, sizeof(m));
	m.id = id;
	strcpy(m.raft_address, raft);
	strcpy(m.http_address, http);
	return m;
}

Test(fsm, commands_change_the_state)
{
	struct rf_fsm fsm;
	rf_fsm_init(&fsm);
	struct raft_buffer buf;
	cr_assert_eq(apply_encoded(&fsm, rf_fsm_encode_term(7, 2, &buf), &buf), RF_FSM_OK);
	cr_assert_eq(fsm.terms_recorded, 1);
	cr_assert_eq(fsm.last_term, 7);
	cr_assert_eq(fsm.last_leader, 2);
	struct rf_fsm_member a = member(1, "10.0.0.1:7000", "10.0.0.1:8000");
	struct rf_fsm_member b = member(2, "10.0.0.2:7000", "10.0.0.2:8000");
	apply_encoded(&fsm, rf_fsm_encode_member(&a, &buf), &buf);
	apply_encoded(&fsm, rf_fsm_encode_member(&b, &buf), &buf);
	cr_assert_eq(fsm.n_members, 2);
	cr_assert_str_eq(rf_fsm_member(&fsm, 2)->http_address, "10.0.0.2:8000");
	b = member(2, "10.0.0.2:7000", "10.0.0.9:8000"); /* update in place */
	apply_encoded(&fsm, rf_fsm_encode_member(&b, &buf), &buf);
	cr_assert_eq(fsm.n_members, 2);
	cr_assert_str_eq(rf_fsm_member(&fsm, 2)->http_address, "10.0.0.9:8000");
	apply_encoded(&fsm, rf_fsm_encode_forget(1, &buf), &buf);
	cr_assert_null(rf_fsm_member(&fsm, 1));
	cr_assert_eq(fsm.n_members, 1);
	apply_encoded(&fsm, rf_fsm_encode_forget(99, &buf), &buf); /* unknown: no-op */
	cr_assert_eq(fsm.n_members, 1);
	cr_assert_eq(fsm.applied, 6);
	cr_assert_eq(fsm.rejected, 0);
	rf_fsm_close(&fsm);
}

Test(fsm, payload_padding_from_disk_or_wire_is_accepted)
{
	struct rf_fsm fsm;
	rf_fsm_init(&fsm);
	char padded[48] = "{\"op\":\"term\",\"term\":3,\"leader\":1}";
	struct raft_buffer buf = {padded, sizeof(padded)}; /* trailing NULs */
	cr_assert_eq(apply_buf(&fsm, &buf), RF_FSM_OK);
	cr_assert_eq(fsm.last_term, 3);
	rf_fsm_close(&fsm);
}

Test(fsm, undecodable_commands_are_counted_and_skipped)
{
	struct rf_fsm fsm;
	rf_fsm_init(&fsm);
	static const char *const bad[] = {
	    "",
	    "not json",
	    "[1]",
	    "{\"op\":\"dance\"}",
	    "{\"op\":\"term\",\"term\":0,\"leader\":1}",
	    "{\"op\":\"term\",\"term\":\"3\",\"leader\":1}",
	    "{\"op\":\"member\",\"id\":1,\"raft_address\":\"x\",\"http_address\":\"10.0.0.1:1\"}",
	    "{\"op\":\"member\",\"id\":0,\"raft_address\":\"10.0.0.1:1\",\"http_address\":\"10.0.0."
	    "1:2\"}",
	    "{\"op\":\"member\",\"id\":1,\"raft_address\":\"0.0.0.0:1\",\"http_address\":\"10.0.0."
	    "1:2\"}",
	    "{\"op\":\"forget\"}",
	    "{\"op\":\"term\",\"op\":\"term\",\"term\":3,\"leader\":1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(apply_text(&fsm, bad[i]), RF_FSM_REJECTED, "%s", bad[i]);
	}
	cr_assert_eq(fsm.rejected, sizeof(bad) / sizeof(bad[0]));
	cr_assert_eq(fsm.applied, 0);
	cr_assert_eq(fsm.terms_recorded + fsm.n_members, 0);
	rf_fsm_close(&fsm);
}

Test(fsm, snapshot_and_restore_round_trip)
{
	struct rf_fsm a;
	rf_fsm_init(&a);
	struct raft_buffer buf;
	apply_encoded(&a, rf_fsm_encode_term(4, 3, &buf), &buf);
	for (uint64_t id = 1; id <= 20; id++) {
		char raft[24], http[24];
		snprintf(raft, sizeof(raft), "10.0.1.%u:7000", (unsigned)id);
		snprintf(http, sizeof(http), "10.0.1.%u:8000", (unsigned)id);
		struct rf_fsm_member m = member(id, raft, http);
		apply_encoded(&a, rf_fsm_encode_member(&m, &buf), &buf);
	}
	apply_text(&a, "garbage");
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	cr_assert_eq(a.iface.snapshot(&a.iface, &bufs, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(bufs[0].len % 8, 0);

	struct rf_fsm b;
	rf_fsm_init(&b);
	struct rf_fsm_member stale = member(99, "10.9.9.9:1", "10.9.9.9:2");
	apply_encoded(&b, rf_fsm_encode_member(&stale, &buf), &buf);
	/* restore owns the buffer; the array stays ours (raft frees it in real life). */
	cr_assert_eq(b.iface.restore(&b.iface, &bufs[0]), 0);
	raft_free(bufs);
	cr_assert_eq(b.terms_recorded, 1);
	cr_assert_eq(b.last_term, 4);
	cr_assert_eq(b.last_leader, 3);
	cr_assert_eq(b.applied, 21);
	cr_assert_eq(b.rejected, 1);
	cr_assert_eq(b.n_members, 20);
	cr_assert_null(rf_fsm_member(&b, 99), "restore must replace, not merge");
	cr_assert_str_eq(rf_fsm_member(&b, 17)->raft_address, "10.0.1.17:7000");
	rf_fsm_close(&a);
	rf_fsm_close(&b);
}

Test(fsm, a_malformed_snapshot_is_refused_and_changes_nothing)
{
	struct rf_fsm fsm;
	rf_fsm_init(&fsm);
	struct raft_buffer buf;
	apply_encoded(&fsm, rf_fsm_encode_term(2, 1, &buf), &buf);
	static const char *const bad[] = {
	    "{}",
	    "{\"format\":2,\"terms_recorded\":0,\"last_term\":0,\"last_leader\":0,\"applied\":0,"
	    "\"rejected\":0,\"members\":[]}",
	    "{\"format\":1,\"terms_recorded\":0,\"last_term\":0,\"last_leader\":0,\"applied\":0,"
	    "\"rejected\":0,\"members\":[{\"id\":1}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct raft_buffer snap = {raft_malloc(strlen(bad[i])), strlen(bad[i])};
		memcpy(snap.base, bad[i], snap.len);
		cr_assert_eq(fsm.iface.restore(&fsm.iface, &snap), RAFT_MALFORMED, "%s", bad[i]);
		raft_free(snap.base); /* refused: still ours */
	}
	cr_assert_eq(fsm.last_term, 2);
	cr_assert_eq(fsm.terms_recorded, 1);
	rf_fsm_close(&fsm);
}

Test(fsm, member_bodies)
{
	struct rf_fsm_member m;
	char err[200];
	const char *ok =
	    "{\"id\":4,\"raft_address\":\"10.0.0.4:7000\",\"http_address\":\"10.0.0.4:8000\"}";
	cr_assert_eq(rf_fsm_member_parse(ok, strlen(ok), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.id, 4);
	cr_assert_str_eq(m.http_address, "10.0.0.4:8000");
	/* Peers by DNS name (a pod keeps its name, not its IP). */
	const char *named = "{\"id\":4,\"raft_address\":\"rf-3.rf-headless.ns.svc:7000\","
			    "\"http_address\":\"rf-3.rf-headless.ns.svc:8080\"}";
	cr_assert_eq(rf_fsm_member_parse(named, strlen(named), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(m.raft_address, "rf-3.rf-headless.ns.svc:7000");
	static const char *const bad[] = {
	    "",
	    "{",
	    "[]",
	    "{\"id\":4,\"raft_address\":\"10.0.0.4:7000\"}",
	    ("{\"id\":4,\"raft_address\":\"10.0.0.4:7000\",\"http_address\":\"10.0.0.4:8000\","
	     "\"x\":1}"),
	    "{\"id\":-4,\"raft_address\":\"10.0.0.4:7000\",\"http_address\":\"10.0.0.4:8000\"}",
	    "{\"id\":4,\"raft_address\":\"node_4:7000\",\"http_address\":\"10.0.0.4:8000\"}",
	    "{\"id\":4,\"raft_address\":\"node4:7000\",\"http_address\":\"0.0.0.0:8000\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(rf_fsm_member_parse(bad[i], strlen(bad[i]), &m, err, sizeof(err)), -1,
			     "%s", bad[i]);
		cr_assert_neq(err[0], '\0');
	}
}

/* Fencing tokens: only ever higher, whatever the term; a lower or equal one is answered as
 * low (not counted as undecodable), and the token survives snapshot and restore. */
Test(fsm, fencing_tokens_only_rise_and_survive_snapshots)
{
	struct rf_fsm a;
	rf_fsm_init(&a);
	struct raft_buffer buf;
	cr_assert_eq(apply_encoded(&a, rf_fsm_encode_token(2, 1001, &buf), &buf), RF_FSM_OK);
	cr_assert_eq(a.token, 1001);
	cr_assert_eq(a.token_term, 2);
	/* Two leaders racing with the same token: the second is refused. */
	cr_assert_eq(apply_encoded(&a, rf_fsm_encode_token(3, 1001, &buf), &buf), RF_FSM_TOKEN_LOW);
	cr_assert_eq(apply_encoded(&a, rf_fsm_encode_token(3, 5, &buf), &buf), RF_FSM_TOKEN_LOW);
	cr_assert_eq(a.token, 1001);
	cr_assert_eq(a.rejected, 0);
	/* A later term's leader takes a higher one; the term does not matter, the order does. */
	cr_assert_eq(apply_encoded(&a, rf_fsm_encode_token(3, 1002, &buf), &buf), RF_FSM_OK);
	cr_assert_eq(apply_text(&a, "{\"op\":\"token\",\"term\":3,\"token\":0}"), RF_FSM_REJECTED);
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	cr_assert_eq(a.iface.snapshot(&a.iface, &bufs, &n), 0);
	struct rf_fsm b;
	rf_fsm_init(&b);
	cr_assert_eq(b.iface.restore(&b.iface, &bufs[0]), 0);
	raft_free(bufs);
	cr_assert_eq(b.token, 1002);
	cr_assert_eq(b.token_term, 3);
	/* A snapshot written before tokens existed restores with none. */
	const char *old = "{\"format\":1,\"terms_recorded\":1,\"last_term\":4,\"last_leader\":3,"
			  "\"applied\":1,\"rejected\":0,\"members\":[]}";
	char *copy = raft_malloc(strlen(old));
	memcpy(copy, old, strlen(old));
	struct raft_buffer ob = {copy, strlen(old)};
	cr_assert_eq(b.iface.restore(&b.iface, &ob), 0);
	cr_assert_eq(b.token, 0);
	cr_assert_eq(b.last_term, 4);
	rf_fsm_close(&a);
	rf_fsm_close(&b);
}
