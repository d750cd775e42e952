/*
 * FSM callbacks: apply, snapshot, restore (see fsm.h for what the state means).
 *
 * apply: decode one JSON command, update the state, report RF_FSM_OK or RF_FSM_REJECTED as the
 * result; always returns 0 so that raft keeps applying.
 * snapshot: the whole state as one JSON document in one raft_malloc'd buffer (raft frees it:
 * version 1 FSM without snapshot_finalize).
 * restore: replace the state with the decoded document; the buffer becomes ours and is freed.
 * A snapshot that does not decode makes restore fail with RAFT_MALFORMED: raft then refuses
 * to start rather than run with a silently reset state.
 */
#include "fsm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hostport.h"
#include "log.h"

#define FSM_SNAPSHOT_FORMAT 1

const struct rf_fsm_member *rf_fsm_member(const struct rf_fsm *fsm, uint64_t id)
{
	for (size_t i = 0; i < fsm->n_members; i++) {
		if (fsm->members[i].id == id) {
			return &fsm->members[i];
		}
	}
	return NULL;
}

static int fsm_dump(json_t *o, struct raft_buffer *buf)
{
	if (o == NULL) {
		return RAFT_NOMEM;
	}
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL) {
		return RAFT_NOMEM;
	}
	/*
	 * raft 0.15 requires payload lengths that are multiples of 8: raft_uv sends an entry's
	 * bytes unpadded over TCP but the receiver decodes a batch assuming every payload is
	 * padded to 8 bytes, so a shorter payload shifts every later entry of the batch.
	 * JSON allows trailing whitespace: pad with spaces.
	 */
	size_t len = strlen(text);
	size_t padded = (len + 7) & ~(size_t)7;
	buf->base = raft_malloc(padded);
	if (buf->base == NULL) {
		free(text);
		return RAFT_NOMEM;
	}
	memcpy(buf->base, text, len);
	memset((char *)buf->base + len, ' ', padded - len);
	buf->len = padded;
	free(text);
	return 0;
}

int rf_fsm_encode_term(uint64_t term, uint64_t leader, struct raft_buffer *buf)
{
	return fsm_dump(json_pack("{s:s, s:I, s:I}", "op", "term", "term", (json_int_t)term,
				  "leader", (json_int_t)leader),
			buf);
}

int rf_fsm_encode_member(const struct rf_fsm_member *m, struct raft_buffer *buf)
{
	return fsm_dump(json_pack("{s:s, s:I, s:s, s:s}", "op", "member", "id", (json_int_t)m->id,
				  "raft_address", m->raft_address, "http_address", m->http_address),
			buf);
}

int rf_fsm_encode_forget(uint64_t id, struct raft_buffer *buf)
{
	return fsm_dump(json_pack("{s:s, s:I}", "op", "forget", "id", (json_int_t)id), buf);
}

int rf_fsm_encode_token(uint64_t term, uint64_t token, struct raft_buffer *buf)
{
	return fsm_dump(json_pack("{s:s, s:I, s:I}", "op", "token", "term", (json_int_t)term,
				  "token", (json_int_t)token),
			buf);
}

/* Decodes a member object {"id", "raft_address", "http_address"}; -1 when malformed. */
static int fsm_decode_member(const json_t *o, struct rf_fsm_member *m)
{
	json_int_t id;
	const char *raft, *http;
	char host[RF_HOSTPORT_MAX];
	unsigned port;
	if (json_unpack((json_t *)o, "{s:I, s:s, s:s}", "id", &id, "raft_address", &raft,
			"http_address", &http) != 0 ||
	    id < 1 || strlen(raft) >= RF_ADDR_MAX || strlen(http) >= RF_ADDR_MAX ||
	    rf_hostport_parse(raft, false, host, &port) != 0 ||
	    rf_hostport_parse(http, false, host, &port) != 0) {
		return -1;
	}
	memset(m, 0, sizeof(*m));
	m->id = (uint64_t)id;
	strcpy(m->raft_address, raft);
	strcpy(m->http_address, http);
	return 0;
}

int rf_fsm_member_parse(const char *text, size_t len, struct rf_fsm_member *m, char *err,
			size_t errlen)
{
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	int rc = -1;
	if (o == NULL || !json_is_object(o)) {
		snprintf(err, errlen, "body must be a JSON object");
	} else if (json_object_size(o) != 3) {
		snprintf(err, errlen,
			 "body must have exactly the keys id, raft_address, http_address");
	} else if (fsm_decode_member(o, m) != 0) {
		snprintf(err, errlen,
			 "id must be an integer >= 1, raft_address and http_address "
			 "\"host:port\" strings (host name or IPv4, not 0.0.0.0)");
	} else {
		rc = 0;
	}
	json_decref(o);
	return rc;
}

static int fsm_upsert(struct rf_fsm *fsm, const struct rf_fsm_member *m)
{
	for (size_t i = 0; i < fsm->n_members; i++) {
		if (fsm->members[i].id == m->id) {
			fsm->members[i] = *m;
			return 0;
		}
	}
	if (fsm->n_members == fsm->cap_members) {
		size_t cap = fsm->cap_members == 0 ? 8 : fsm->cap_members * 2;
		struct rf_fsm_member *grown = realloc(fsm->members, cap * sizeof(*grown));
		if (grown == NULL) {
			return -1;
		}
		fsm->members = grown;
		fsm->cap_members = cap;
	}
	fsm->members[fsm->n_members++] = *m;
	return 0;
}

static void fsm_forget(struct rf_fsm *fsm, uint64_t id)
{
	for (size_t i = 0; i < fsm->n_members; i++) {
		if (fsm->members[i].id == id) {
			fsm->members[i] = fsm->members[--fsm->n_members];
			return;
		}
	}
}

/* Applies one decoded command; -1 when it is not a valid command, 1 for a token that is
 * not above the recorded one. */
static int fsm_apply_json(struct rf_fsm *fsm, const json_t *cmd)
{
	const char *op;
	json_int_t a, b;
	struct rf_fsm_member m;
	if (json_unpack((json_t *)cmd, "{s:s}", "op", &op) != 0) {
		return -1;
	}
	if (strcmp(op, "term") == 0) {
		if (json_unpack((json_t *)cmd, "{s:I, s:I}", "term", &a, "leader", &b) != 0 ||
		    a < 1 || b < 1) {
			return -1;
		}
		fsm->terms_recorded++;
		fsm->last_term = (uint64_t)a;
		fsm->last_leader = (uint64_t)b;
		return 0;
	}
	if (strcmp(op, "member") == 0) {
		return fsm_decode_member(cmd, &m) == 0 ? fsm_upsert(fsm, &m) : -1;
	}
	if (strcmp(op, "token") == 0) {
		if (json_unpack((json_t *)cmd, "{s:I, s:I}", "term", &a, "token", &b) != 0 ||
		    a < 1 || b < 1) {
			return -1;
		}
		if ((uint64_t)b <= fsm->token) {
			return 1;
		}
		fsm->token = (uint64_t)b;
		fsm->token_term = (uint64_t)a;
		return 0;
	}
	if (strcmp(op, "forget") == 0) {
		if (json_unpack((json_t *)cmd, "{s:I}", "id", &a) != 0 || a < 1) {
			return -1;
		}
		fsm_forget(fsm, (uint64_t)a);
		return 0;
	}
	return -1;
}

/*
 * The payload length without trailing NUL bytes: raft_uv pads entry data to a multiple of 8
 * bytes on disk and on the wire, so a replayed or replicated entry can be longer than what
 * was applied. JSON text never contains a raw NUL.
 */
static size_t fsm_payload_len(const struct raft_buffer *buf)
{
	const char *p = buf->base;
	size_t len = buf->len;
	while (len > 0 && p[len - 1] == '\0') {
		len--;
	}
	return len;
}

static int fsm_apply(struct raft_fsm *iface, const struct raft_buffer *buf, void **result)
{
	struct rf_fsm *fsm = iface->data;
	json_t *cmd = json_loadb(buf->base, fsm_payload_len(buf), JSON_REJECT_DUPLICATES, NULL);
	int rc = cmd != NULL ? fsm_apply_json(fsm, cmd) : -1;
	json_decref(cmd);
	if (rc == 1) {
		*result = RF_FSM_TOKEN_LOW;
		return 0;
	}
	if (rc != 0) {
		char shown[200];
		size_t n = buf->len < 64 ? buf->len : 64;
		size_t k = 0;
		for (size_t i = 0; i < n && k + 4 < sizeof(shown); i++) {
			k += (size_t)snprintf(shown + k, sizeof(shown) - k, "%02x",
					      ((const unsigned char *)buf->base)[i]);
		}
		rf_log(RF_LOG_WARN, "fsm.rejected", "command of %zu bytes rejected: %s...",
		       buf->len, shown);
		fsm->rejected++;
		*result = RF_FSM_REJECTED;
		return 0;
	}
	fsm->applied++;
	*result = RF_FSM_OK;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *iface, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct rf_fsm *fsm = iface->data;
	json_t *members = json_array();
	for (size_t i = 0; members != NULL && i < fsm->n_members; i++) {
		const struct rf_fsm_member *m = &fsm->members[i];
		json_array_append_new(members, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)m->id,
							 "raft_address", m->raft_address,
							 "http_address", m->http_address));
	}
	json_t *doc = json_pack(
	    "{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "format", FSM_SNAPSHOT_FORMAT,
	    "terms_recorded", (json_int_t)fsm->terms_recorded, "last_term",
	    (json_int_t)fsm->last_term, "last_leader", (json_int_t)fsm->last_leader, "token",
	    (json_int_t)fsm->token, "token_term", (json_int_t)fsm->token_term, "applied",
	    (json_int_t)fsm->applied, "rejected", (json_int_t)fsm->rejected, "members", members);
	struct raft_buffer *out = raft_malloc(sizeof(*out));
	if (out == NULL) {
		json_decref(doc);
		return RAFT_NOMEM;
	}
	int rc = fsm_dump(doc, out);
	if (rc != 0) {
		raft_free(out);
		return rc;
	}
	*bufs = out;
	*n_bufs = 1;
	return 0;
}

/* Decodes a snapshot document into a fresh state; -1 when malformed. */
static int fsm_decode_snapshot(const json_t *doc, struct rf_fsm *into)
{
	int format;
	json_int_t terms, last_term, last_leader, applied, rejected;
	json_int_t token = 0, token_term = 0; /* absent from snapshots taken before tokens */
	json_t *members;
	if (json_unpack((json_t *)doc, "{s:i, s:I, s:I, s:I, s?:I, s?:I, s:I, s:I, s:o}", "format",
			&format, "terms_recorded", &terms, "last_term", &last_term, "last_leader",
			&last_leader, "token", &token, "token_term", &token_term, "applied",
			&applied, "rejected", &rejected, "members", &members) != 0 ||
	    format != FSM_SNAPSHOT_FORMAT || !json_is_array(members) || terms < 0 ||
	    last_term < 0 || last_leader < 0 || applied < 0 || rejected < 0 || token < 0 ||
	    token_term < 0) {
		return -1;
	}
	into->token = (uint64_t)token;
	into->token_term = (uint64_t)token_term;
	into->terms_recorded = (uint64_t)terms;
	into->last_term = (uint64_t)last_term;
	into->last_leader = (uint64_t)last_leader;
	into->applied = (uint64_t)applied;
	into->rejected = (uint64_t)rejected;
	size_t i;
	json_t *v;
	json_array_foreach(members, i, v)
	{
		struct rf_fsm_member m;
		if (fsm_decode_member(v, &m) != 0 || fsm_upsert(into, &m) != 0) {
			return -1;
		}
	}
	return 0;
}

static int fsm_restore(struct raft_fsm *iface, struct raft_buffer *buf)
{
	struct rf_fsm *fsm = iface->data;
	json_t *doc = json_loadb(buf->base, fsm_payload_len(buf), JSON_REJECT_DUPLICATES, NULL);
	struct rf_fsm fresh;
	rf_fsm_init(&fresh);
	int rc = doc != NULL ? fsm_decode_snapshot(doc, &fresh) : -1;
	json_decref(doc);
	if (rc != 0) {
		rf_fsm_close(&fresh);
		return RAFT_MALFORMED;
	}
	raft_free(buf->base);
	free(fsm->members);
	fsm->members = fresh.members;
	fsm->n_members = fresh.n_members;
	fsm->cap_members = fresh.cap_members;
	fsm->terms_recorded = fresh.terms_recorded;
	fsm->last_term = fresh.last_term;
	fsm->last_leader = fresh.last_leader;
	fsm->token = fresh.token;
	fsm->token_term = fresh.token_term;
	fsm->applied = fresh.applied;
	fsm->rejected = fresh.rejected;
	return 0;
}

void rf_fsm_init(struct rf_fsm *fsm)
{
	memset(fsm, 0, sizeof(*fsm));
	fsm->iface.version = 1;
	fsm->iface.data = fsm;
	fsm->iface.apply = fsm_apply;
	fsm->iface.snapshot = fsm_snapshot;
	fsm->iface.restore = fsm_restore;
}

void rf_fsm_close(struct rf_fsm *fsm)
{
	free(fsm->members);
	fsm->members = NULL;
	fsm->n_members = 0;
	fsm->cap_members = 0;
}
