/* Shared benchmark helpers (see bench_common.h). */
#include "bench_common.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void bench_lat_add(struct bench_lat *l, uint64_t us)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (l->v == NULL) {
			abort();
		}
	}
	l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void bench_lat_merge(struct bench_lat *into, const struct bench_lat *from)
{
	for (size_t i = 0; i < from->n; i++) {
		bench_lat_add(into, from->v[i]);
	}
}

static int bench_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

double bench_lat_pct_ms(struct bench_lat *l, double p)
{
	if (l->n == 0) {
		return 0;
	}
	qsort(l->v, l->n, sizeof(*l->v), bench_cmp_u32);
	size_t i = (size_t)(p / 100.0 * (double)(l->n - 1) + 0.5);
	return l->v[i] / 1000.0;
}

void bench_lat_free(struct bench_lat *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

uint64_t bench_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double bench_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

double bench_machine_busy_s(void)
{
	FILE *f = fopen("/proc/stat", "r");
	if (f == NULL) {
		return -1;
	}
	unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
			   steal = 0;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
		       &iowait, &irq, &softirq, &steal);
	fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	if (n < 8 || hz <= 0) {
		return -1;
	}
	return (double)(user + nice + sys + irq + softirq + steal) / (double)hz;
}

int bench_run(const char *cmd, char *out, size_t size)
{
	FILE *f = popen(cmd, "r");
	if (f == NULL) {
		return -1;
	}
	size_t n = 0;
	if (out != NULL && size > 0) {
		n = fread(out, 1, size - 1, f);
		out[n] = '\0';
	} else {
		char buf[4096];
		while (fread(buf, 1, sizeof(buf), f) > 0) {
		}
	}
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char bench_envfile[256];

static const char *bench_scripts_dir(void)
{
	const char *d = getenv("LG_SCRIPTS_DIR");
	return d != NULL ? d : LG_SOURCE_ROOT "/scripts";
}

/* Runs `services up` with flags, then prints the given shell expression into out. */
static bool bench_services_start(const char *flags, const char *print, char *out, size_t size)
{
	snprintf(bench_envfile, sizeof(bench_envfile), "/tmp/lg-bench-env.%d", (int)getpid());
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s/services' up '%s' %s >&2 && . '%s' && printf %s",
		 bench_scripts_dir(), bench_envfile, flags, bench_envfile, print);
	return bench_run(cmd, out, size) == 0 && out[0] != '\0';
}

bool bench_services_up(char *dsn, size_t size)
{
	if (!bench_services_start("--no-redis", "%s \"$LG_TEST_PG_DSN\"", dsn, size)) {
		fprintf(stderr, "bench: could not start PostgreSQL with scripts/services\n");
		return false;
	}
	return true;
}

bool bench_services_up_redis(char *dsn, size_t size, int *redis_port)
{
	char out[1024];
	char *nl = NULL;
	if (!bench_services_start("--replicas 0",
				  "'%s\\n%s' \"$LG_TEST_REDIS_PORT\" \"$LG_TEST_PG_DSN\"", out,
				  sizeof(out)) ||
	    (nl = strchr(out, '\n')) == NULL || (*redis_port = atoi(out)) <= 0 ||
	    (size_t)snprintf(dsn, size, "%s", nl + 1) >= size) {
		fprintf(stderr,
			"bench: could not start PostgreSQL and Redis with scripts/services\n");
		bench_services_down();
		return false;
	}
	return true;
}

void bench_services_down(void)
{
	if (bench_envfile[0] == '\0') {
		return;
	}
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s/services' down '%s' >/dev/null 2>&1; rm -f '%s'",
		 bench_scripts_dir(), bench_envfile, bench_envfile);
	bench_run(cmd, NULL, 0);
	bench_envfile[0] = '\0';
}

unsigned bench_free_port(void)
{
	static unsigned used[64];
	static size_t n_used;
	static unsigned seed;
	if (seed == 0) {
		seed = (unsigned)getpid() ^ (unsigned)bench_now_us();
	}
	for (int attempt = 0; attempt < 1000 && n_used < sizeof(used) / sizeof(used[0]);
	     attempt++) {
		unsigned port = 20000 + (unsigned)(rand_r(&seed) % 12000);
		bool taken = false;
		for (size_t k = 0; k < n_used; k++) {
			taken |= used[k] == port;
		}
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		bool ok = fd >= 0 && !taken && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (fd >= 0) {
			close(fd);
		}
		if (ok) {
			used[n_used++] = port;
			return port;
		}
	}
	return 0;
}

const char *bench_reflector_bin(void)
{
	static char path[PATH_MAX + 64];
	const char *v = getenv("LG_REFLECTOR_BIN");
	if (v != NULL && v[0] != '\0') {
		return v;
	}
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		return "lifeguard-reflector";
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash != NULL) {
		*slash = '\0';
	}
	snprintf(path, sizeof(path), "%s/../../reflector/lifeguard-reflector", self);
	return path;
}

bool bench_opt(int argc, char **argv, int *i, struct bench_opts *o)
{
	const char *a = argv[*i];
	bool value = *i + 1 < argc;
	int *num = strcmp(a, "--conns") == 0     ? &o->conns
		   : strcmp(a, "--clients") == 0 ? &o->clients
		   : strcmp(a, "--seconds") == 0 ? &o->seconds
		   : strcmp(a, "--rounds") == 0  ? &o->rounds
						 : NULL;
	if (num != NULL && value) {
		*num = atoi(argv[++*i]);
		return true;
	}
	if (strcmp(a, "--dsn") == 0 && value) {
		o->dsn = argv[++*i];
		return true;
	}
	if (strcmp(a, "--json") == 0) {
		o->json = true;
		return true;
	}
	return false;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
