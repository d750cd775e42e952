/*
 * The users service's routes:
 *   GET    /users/:id          one user; Lifeguard-Source says where it was read
 *   GET    /users?ids=1,2,3    up to SVC_MAX_IDS users: {"users":[...],"missing":[ids]} (one
 *                              MGET through the cache, misses in one statement)
 *   POST   /users              {"email": "...", "name": "..."|null} -> 201
 *   PUT    /users/:id          {"email"?, "name"?, "version"?} -> 200 (409: version changed)
 *   DELETE /users/:id          -> 204
 *   GET    /metrics, /healthz
 * Writes answer with a Lifeguard-Token header; reads that send it back read that write.
 * "Cache-Control: no-cache" on a read skips Redis (a replica or the primary answers).
 * Malformed input gets a 4xx with {"error": "..."} and changes nothing.
 */
#include "svc_api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_MAX_IDS   SVC_MAX_MANY
#define SVC_MAX_EMAIL 320
#define SVC_MAX_NAME  200

static void reply_json(struct svc_http_resp *resp, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (body != NULL && text == NULL) {
		svc_http_reply(resp, 500, "{\"error\":\"out of memory\"}\n", 25);
	} else if (text != NULL) {
		size_t n = strlen(text);
		text[n] = '\n';
		svc_http_reply(resp, status, text, n + 1);
	} else {
		svc_http_reply(resp, status, NULL, 0);
	}
	free(text);
	json_decref(body);
}

static void reply_error(struct svc_http_resp *resp, int status, const char *message)
{
	reply_json(resp, status, json_pack("{s:s}", "error", message));
}

/* A libguard error as a reply: the status names whose fault it is. */
static void reply_store_error(struct svc_http_resp *resp, int rc, const struct lg_error *err)
{
	if (rc == LG_ENOTFOUND) {
		reply_error(resp, 404, "no such user");
	} else if (rc == LG_ESERVER && strcmp(err->sqlstate, "40001") == 0) {
		reply_error(resp, 409, "the user changed since that version");
	} else if (rc == LG_ESERVER && strncmp(err->sqlstate, "22", 2) == 0) {
		reply_error(resp, 400,
			    err->message); /* data exception: a value the column refuses */
	} else {
		char msg[sizeof(err->message) + 16];
		snprintf(msg, sizeof(msg), "database: %s",
			 err->message[0] ? err->message : lg_strerror(rc));
		reply_error(resp, 503, msg);
	}
}

static void add_token(struct svc_http_resp *resp, const struct svc_token *tok)
{
	char text[SVC_MAX_TOKEN];
	if (tok->set && svc_token_format(tok, text, sizeof(text))) {
		svc_http_header(resp, "Lifeguard-Token", text);
	}
}

static void get_one(struct svc_api *api, int64_t id, const struct svc_token *tok, bool bypass,
		    struct svc_http_resp *resp)
{
	json_t *user;
	enum svc_source src;
	struct lg_error err = {0};
	int rc = svc_store_get(api->store, id, tok, bypass, &user, &src, &err);
	if (rc == 0 || rc == LG_ENOTFOUND) {
		svc_http_header(resp, "Lifeguard-Source",
				svc_source_name(rc ? SVC_SRC_PRIMARY : src));
	}
	if (rc != 0) {
		reply_store_error(resp, rc, &err);
		return;
	}
	reply_json(resp, 200, user);
}

/* GET /users?ids=1,2,3: each id in turn (a missing one is listed, not an error). */
static void get_many(struct svc_api *api, const char *ids, const struct svc_token *tok, bool bypass,
		     struct svc_http_resp *resp)
{
	int64_t list[SVC_MAX_IDS];
	size_t n = 0;
	for (const char *p = ids;;) {
		size_t len = strcspn(p, ",&");
		if (n == SVC_MAX_IDS) {
			reply_error(resp, 400, "at most 100 ids per request");
			return;
		}
		if (!svc_id_parse(p, len, &list[n++])) {
			reply_error(resp, 400,
				    "ids must be positive decimal integers, comma-separated");
			return;
		}
		if (p[len] != ',') {
			break;
		}
		p += len + 1;
	}
	json_t *found[SVC_MAX_IDS];
	enum svc_source src[SVC_MAX_IDS];
	struct lg_error err = {0};
	int rc = svc_store_get_many(api->store, list, n, tok, bypass, found, src, &err);
	if (rc != 0) {
		reply_store_error(resp, rc, &err);
		return;
	}
	json_t *users = json_array(), *missing = json_array();
	char sources[SVC_MAX_IDS * 8] = "";
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(found[i] ? users : missing,
				      found[i] ? found[i] : json_integer((json_int_t)list[i]));
		strcat(sources, i ? "," : "");
		strcat(sources, svc_source_name(src[i]));
	}
	svc_http_header(resp, "Lifeguard-Source", sources);
	reply_json(resp, 200, json_pack("{s:o,s:o}", "users", users, "missing", missing));
}

/* The JSON object of a write's body; NULL after a 400 was set. */
static json_t *parse_body(const struct svc_http_req *req, struct svc_http_resp *resp)
{
	json_error_t jerr;
	if (req->body == NULL) {
		reply_error(resp, 400, "a JSON object body is required");
		return NULL;
	}
	json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(body)) {
		char msg[240];
		snprintf(msg, sizeof(msg), "body: %s", body ? "not a JSON object" : jerr.text);
		json_decref(body);
		reply_error(resp, 400, msg);
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(body, key, v)
	{
		if (strcmp(key, "email") != 0 && strcmp(key, "name") != 0 &&
		    strcmp(key, "version") != 0) {
			json_decref(body);
			reply_error(resp, 400,
				    "body: unknown field (allowed: email, name, version)");
			return NULL;
		}
	}
	return body;
}

/* Checks the fields of a write; false after a 400 was set. */
static bool check_fields(json_t *body, bool create, struct svc_http_resp *resp)
{
	json_t *email = json_object_get(body, "email"), *name = json_object_get(body, "name");
	json_t *version = json_object_get(body, "version");
	const char *why = NULL;
	if (create && email == NULL) {
		why = "email is required";
	} else if (email && (!json_is_string(email) || json_string_length(email) == 0 ||
			     json_string_length(email) > SVC_MAX_EMAIL ||
			     strlen(json_string_value(email)) != json_string_length(email))) {
		why = "email must be a non-empty string of at most 320 bytes";
	} else if (name && !json_is_null(name) &&
		   (!json_is_string(name) || json_string_length(name) > SVC_MAX_NAME ||
		    strlen(json_string_value(name)) != json_string_length(name))) {
		why = "name must be null or a string of at most 200 bytes";
	} else if (version &&
		   (create || !json_is_integer(version) || json_integer_value(version) < 1)) {
		why =
		    create ? "version is set by the server" : "version must be a positive integer";
	} else if (!create && email == NULL && name == NULL) {
		why = "nothing to update: give email and/or name";
	}
	if (why != NULL) {
		reply_error(resp, 400, why);
	}
	return why == NULL;
}

static void write_user(struct svc_api *api, const struct svc_http_req *req, int64_t id,
		       struct svc_http_resp *resp)
{
	json_t *body = parse_body(req, resp);
	if (body == NULL || !check_fields(body, id == 0, resp)) {
		json_decref(body);
		return;
	}
	json_t *email = json_object_get(body, "email"), *name = json_object_get(body, "name");
	json_t *version = json_object_get(body, "version");
	json_t *user = NULL;
	struct svc_token tok = {0};
	struct lg_error err = {0};
	const char *name_text = json_is_string(name) ? json_string_value(name) : NULL;
	int rc = id == 0 ? svc_store_create(api->store, json_string_value(email), name_text, &user,
					    &tok, &err)
			 : svc_store_update(api->store, id, json_string_value(email), email != NULL,
					    name_text, name != NULL,
					    version ? (int64_t)json_integer_value(version) : 0,
					    &user, &tok, &err);
	json_decref(body);
	if (rc != 0 && user == NULL) {
		reply_store_error(resp, rc, &err);
		return;
	}
	/* Written; a failed token read leaves the header out rather than failing the write. */
	add_token(resp, &tok);
	if (id == 0) {
		char loc[40];
		snprintf(loc, sizeof(loc), "/users/%" PRId64,
			 (int64_t)json_integer_value(json_object_get(user, "id")));
		svc_http_header(resp, "Location", loc);
	}
	reply_json(resp, id == 0 ? 201 : 200, user);
}

static void delete_user(struct svc_api *api, int64_t id, struct svc_http_resp *resp)
{
	struct svc_token tok = {0};
	struct lg_error err = {0};
	int rc = svc_store_delete(api->store, id, &tok, &err);
	if (rc != 0 && !tok.deleted) {
		reply_store_error(resp, rc, &err);
		return;
	}
	add_token(resp, &tok);
	svc_http_reply(resp, 204, NULL, 0);
}

static void serve_metrics(struct svc_api *api, struct svc_http_resp *resp)
{
	size_t len;
	char *text = svc_metrics_render(api, &len);
	if (text == NULL) {
		reply_error(resp, 500, "out of memory");
		return;
	}
	free(resp->body);
	resp->status = 200;
	resp->body = text;
	resp->body_len = len;
	resp->content_type = "text/plain; version=0.0.4";
}

static void route_users(struct svc_api *api, const struct svc_http_req *req, const char *path,
			const char *query, struct svc_http_resp *resp)
{
	struct svc_token tok;
	if (!svc_token_parse(req->token, &tok)) {
		reply_error(resp, 400, "malformed Lifeguard-Token header");
		return;
	}
	if (strcmp(path, "/users") == 0 || strcmp(path, "/users/") == 0) {
		if (req->method == HTTP_POST) {
			write_user(api, req, 0, resp);
		} else if (req->method == HTTP_GET && query && strncmp(query, "ids=", 4) == 0) {
			get_many(api, query + 4, &tok, req->no_cache, resp);
		} else if (req->method == HTTP_GET) {
			reply_error(resp, 400, "list reads need ?ids=1,2,3");
		} else {
			reply_error(resp, 405, "use GET ?ids= or POST on /users");
		}
		return;
	}
	int64_t id;
	const char *idtext = path + strlen("/users/");
	if (!svc_id_parse(idtext, strlen(idtext), &id)) {
		reply_error(resp, 400, "the user id must be a positive decimal integer");
		return;
	}
	switch (req->method) {
	case HTTP_GET:
		get_one(api, id, &tok, req->no_cache, resp);
		break;
	case HTTP_PUT:
		write_user(api, req, id, resp);
		break;
	case HTTP_DELETE:
		delete_user(api, id, resp);
		break;
	default:
		reply_error(resp, 405, "use GET, PUT or DELETE on /users/:id");
	}
}

void svc_api_handle(void *ud, const struct svc_http_req *req, struct svc_http_resp *resp)
{
	struct svc_api *api = ud;
	char path[SVC_MAX_URL + 1];
	memcpy(path, req->url, req->url_len + 1);
	char *query = strchr(path, '?');
	if (query != NULL) {
		*query++ = '\0';
	}
	if (strcmp(path, "/users") == 0 || strncmp(path, "/users/", 7) == 0) {
		route_users(api, req, path, query, resp);
	} else if (strcmp(path, "/metrics") == 0 && req->method == HTTP_GET) {
		serve_metrics(api, resp);
	} else if (strcmp(path, "/healthz") == 0 && req->method == HTTP_GET) {
		reply_json(resp, 200, json_pack("{s:b}", "ok", 1));
	} else {
		reply_error(resp, 404, "no such route");
	}
	api->responses[resp->status / 100 < 6 ? resp->status / 100 : 5]++;
}
