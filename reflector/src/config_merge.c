/*
 * Merging the three sources of settings into one JSON object (see config.c for the order).
 * Environment and flag values are text; they are converted to the JSON type the key expects
 * here, so that decoding has a single code path whatever the source.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "config_int.h"

int cfg_key_index(const char *name)
{
	for (size_t i = 0; i < cfg_n_keys; i++) {
		if (strcmp(cfg_keys[i].name, name) == 0) {
			return (int)i;
		}
	}
	return -1;
}

/* Strict decimal: digits only, no sign, no blanks, fits in int64. */
static int merge_parse_uint(const char *s, json_int_t *out)
{
	json_int_t v = 0;
	if (*s == '\0' || strlen(s) > 18) {
		return -1;
	}
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s)) {
			return -1;
		}
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

/*
 * jansson's message without its " near '<token>'" tail: the token could be part of a secret
 * (a password in LIFEGUARD_REDIS, the admin token in the file).
 */
static const char *merge_jansson_text(json_error_t *jerr)
{
	char *near = strstr(jerr->text, " near ");
	if (near != NULL) {
		*near = '\0';
	}
	return jerr->text;
}

/* Converts a text value for key k into a new JSON value, or fails naming the key. */
static json_t *merge_convert(const struct cfg_key *k, const char *text, const char *source,
			     struct rf_config_error *err)
{
	json_int_t n;
	json_error_t jerr;
	json_t *v = NULL;
	switch (k->kind) {
	case CFG_UINT:
		if (merge_parse_uint(text, &n) != 0) {
			cfg_fail(err, k->name, source,
				 "must be a non-negative integer, got \"%.40s\"", text);
			return NULL;
		}
		v = json_integer(n);
		break;
	case CFG_STRING:
		v = json_string(text);
		if (v == NULL) {
			cfg_fail(err, k->name, source, "must be valid UTF-8 text");
			return NULL;
		}
		break;
	case CFG_BOOL:
		if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0) {
			v = json_true();
		} else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0 ||
			   text[0] == '\0') {
			v = json_false();
		} else {
			cfg_fail(err, k->name, source, "must be true, false, 1 or 0");
			return NULL;
		}
		break;
	case CFG_JSON:
		v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
		if (v == NULL) {
			cfg_fail(err, k->name, source, "must be JSON: %s (column %d)",
				 merge_jansson_text(&jerr), jerr.column);
			return NULL;
		}
		break;
	}
	if (v == NULL) {
		cfg_fail(err, k->name, source, "out of memory");
	}
	return v;
}

static int merge_set(json_t *root, struct cfg_sources *src, const char *key, const char *text,
		     const char *source, struct rf_config_error *err)
{
	int i = cfg_key_index(key);
	json_t *v = merge_convert(&cfg_keys[i], text, source, err);
	if (v == NULL) {
		return -1;
	}
	json_object_set_new(root, key, v);
	snprintf(src->where[i], sizeof(src->where[i]), "%s", source);
	return 0;
}

static int merge_env(json_t *root, struct cfg_sources *src, rf_env_lookup env, void *env_data,
		     struct rf_config_error *err)
{
	for (size_t i = 0; i < cfg_n_keys && env != NULL; i++) {
		char name[64] = "LIFEGUARD_";
		size_t len = strlen(name);
		for (const char *p = cfg_keys[i].name; *p != '\0' && len + 1 < sizeof(name); p++) {
			name[len++] = (char)toupper((unsigned char)*p);
		}
		name[len] = '\0';
		const char *text = env(env_data, name);
		if (text == NULL) {
			continue;
		}
		char source[96];
		snprintf(source, sizeof(source), "from %s", name);
		if (merge_set(root, src, cfg_keys[i].name, text, source, err) != 0) {
			return -1;
		}
	}
	return 0;
}

static int merge_flags(json_t *root, struct cfg_sources *src, const struct rf_config_flags *f,
		       struct rf_config_error *err)
{
	const struct {
		const char *key;
		const char *value;
		const char *flag;
	} map[] = {
#define CFG_ROW_FLAG(name, kind, secret, flag)                                                     \
	{#name, CFG_FLAG_TEXT_##kind(f->name), "from --" flag},
	    RF_CONFIG_KEYS(CFG_IGNORE_KEY, CFG_ROW_FLAG, CFG_IGNORE_UINT)
#undef CFG_ROW_FLAG
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].value != NULL &&
		    merge_set(root, src, map[i].key, map[i].value, map[i].flag, err) != 0) {
			return -1;
		}
	}
	return 0;
}

/* Parses the file text into root; rejects non-objects and unknown keys. */
static json_t *merge_file(const char *text, size_t len, const char *path, struct cfg_sources *src,
			  struct rf_config_error *err)
{
	const char *name = path != NULL ? path : "config";
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		cfg_fail(err, "--config", NULL, "%s:%d:%d: %s", name, jerr.line, jerr.column,
			 merge_jansson_text(&jerr));
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		cfg_fail(err, "--config", NULL, "%s: the top level must be a JSON object", name);
		return NULL;
	}
	const char *key;
	json_t *value;
	json_object_foreach(root, key, value)
	{
		int i = cfg_key_index(key);
		if (i < 0) {
			char shown[48] = "\"\""; /* an empty name still shows as a key */
			if (key[0] != '\0') {
				cfg_show_name(shown, sizeof(shown), key);
			}
			cfg_fail(err, shown, NULL, "unknown key in %s", name);
			json_decref(root);
			return NULL;
		}
		snprintf(src->where[i], sizeof(src->where[i]), "in %s", name);
	}
	return root;
}

int rf_config_build(const char *json_text, size_t json_len, const char *path, rf_env_lookup env,
		    void *env_data, const struct rf_config_flags *flags, struct rf_config *cfg,
		    struct rf_config_error *err)
{
	struct cfg_sources src;
	memset(&src, 0, sizeof(src));
	memset(cfg, 0, sizeof(*cfg));
	memset(err, 0, sizeof(*err));
	json_t *root =
	    json_text != NULL ? merge_file(json_text, json_len, path, &src, err) : json_object();
	if (root == NULL) {
		if (err->message[0] == '\0') {
			cfg_fail(err, "--config", NULL, "out of memory");
		}
		return -1;
	}
	int rc = merge_env(root, &src, env, env_data, err);
	if (rc == 0 && flags != NULL) {
		rc = merge_flags(root, &src, flags, err);
	}
	if (rc == 0) {
		rc = cfg_decode(root, &src, cfg, err);
	}
	json_decref(root);
	if (rc != 0) {
		rf_config_free(cfg);
	}
	return rc;
}
