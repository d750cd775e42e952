/*
 * Coroutine context switching and stacks.
 *
 * Stacks are private anonymous mappings with a PROT_NONE guard page at the low end, so an
 * overflow faults instead of corrupting a neighbour. The switch itself is boost.context's
 * jump_fcontext/make_fcontext (a few ns, no syscall), or POSIX ucontext as a fallback
 * (swapcontext saves the signal mask with a syscall on every switch).
 *
 * Switch protocol (fcontext): the scheduler resumes a coroutine with
 * jump_fcontext(coro->fctx, coro); the jump returns on the scheduler when the coroutine jumps
 * back, handing over the coroutine's new context, which is stored for the next resume. The
 * coroutine side likewise stores the scheduler's context each time it is resumed. A finished
 * coroutine jumps back one last time and is never resumed; its stack is released by the
 * scheduler, which is no longer running on it.
 *
 * Under AddressSanitizer every switch is announced with __sanitizer_start_switch_fiber and
 * completed with __sanitizer_finish_switch_fiber, so ASan tracks which stack is live.
 */
#include "runtime_int.h"

#include <assert.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define LG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LG_ASAN 1
#endif
#endif

#if defined(LG_ASAN)
#include <sanitizer/common_interface_defs.h>
#define ASAN_START(save, bottom, size)  __sanitizer_start_switch_fiber((save), (bottom), (size))
#define ASAN_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber((save), (bottom), (size))
#else
#define ASAN_START(save, bottom, size)  ((void)(save), (void)(bottom), (void)(size))
#define ASAN_FINISH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

#if defined(LG_CORO_FCONTEXT)
/* boost.context's C-linkage entry points (libboost_context, assembly per ABI). */
typedef void *fcontext_t;
typedef struct {
	fcontext_t fctx;
	void *data;
} transfer_t;
extern transfer_t jump_fcontext(fcontext_t const to, void *vp);
extern fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));
#endif

static size_t coro_page_size(void)
{
	static size_t page;
	if (page == 0) {
		long p = sysconf(_SC_PAGESIZE);
		page = p > 0 ? (size_t)p : 4096;
	}
	return page;
}

int lg__stack_alloc(size_t usable, struct lg__stack *out)
{
	size_t page = coro_page_size();
	size_t size = ((usable + page - 1) / page) * page + page;
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (base == MAP_FAILED) {
		return LG_ENOMEM;
	}
	if (mprotect(base, page, PROT_NONE) != 0) {
		munmap(base, size);
		return LG_ENOMEM;
	}
	out->base = base;
	out->size = size;
	return 0;
}

void lg__stack_release(struct lg__stack *stack)
{
	if (stack->base != NULL) {
		munmap(stack->base, stack->size);
		stack->base = NULL;
		stack->size = 0;
	}
}

static void *coro_stack_bottom(const struct lg_coro *c)
{
	return (char *)c->stack.base + coro_page_size();
}

static size_t coro_stack_usable(const struct lg_coro *c)
{
	return c->stack.size - coro_page_size();
}

static void coro_entered(struct lg_coro *c)
{
	struct lg_runtime *rt = c->rt;
	ASAN_FINISH(NULL, &rt->sched_stack_bottom, &rt->sched_stack_size);
	lg__coro_main(c);
	lg__coro_exit(c);
}

#if defined(LG_CORO_FCONTEXT)

static void coro_trampoline(transfer_t t)
{
	struct lg_coro *c = t.data;
	c->rt->sched_fctx = t.fctx;
	coro_entered(c);
}

void lg__coro_prepare(struct lg_coro *c)
{
	char *top = (char *)coro_stack_bottom(c) + coro_stack_usable(c);
	c->fctx = make_fcontext(top, coro_stack_usable(c), coro_trampoline);
}

void lg__coro_resume(struct lg_runtime *rt, struct lg_coro *c)
{
	ASAN_START(&rt->sched_fake_stack, coro_stack_bottom(c), coro_stack_usable(c));
	transfer_t t = jump_fcontext(c->fctx, c);
	ASAN_FINISH(rt->sched_fake_stack, NULL, NULL);
	c->fctx = t.fctx;
}

void lg__coro_suspend(struct lg_coro *c)
{
	struct lg_runtime *rt = c->rt;
	ASAN_START(&c->asan_fake_stack, rt->sched_stack_bottom, rt->sched_stack_size);
	transfer_t t = jump_fcontext(rt->sched_fctx, NULL);
	ASAN_FINISH(c->asan_fake_stack, &rt->sched_stack_bottom, &rt->sched_stack_size);
	rt->sched_fctx = t.fctx;
}

_Noreturn void lg__coro_exit(struct lg_coro *c)
{
	struct lg_runtime *rt = c->rt;
	/* A NULL save slot tells ASan this fiber's fake stack can be destroyed. */
	ASAN_START(NULL, rt->sched_stack_bottom, rt->sched_stack_size);
	jump_fcontext(rt->sched_fctx, NULL);
	abort(); /* A finished coroutine is never resumed. */
}

#else /* ucontext */

/* makecontext passes only ints: hand the coroutine over through a thread-local. */
static _Thread_local struct lg_coro *coro_starting;

static void coro_trampoline(void)
{
	coro_entered(coro_starting);
}

void lg__coro_prepare(struct lg_coro *c)
{
	getcontext(&c->uctx);
	c->uctx.uc_stack.ss_sp = coro_stack_bottom(c);
	c->uctx.uc_stack.ss_size = coro_stack_usable(c);
	c->uctx.uc_link = NULL;
	makecontext(&c->uctx, coro_trampoline, 0);
}

void lg__coro_resume(struct lg_runtime *rt, struct lg_coro *c)
{
	coro_starting = c;
	ASAN_START(&rt->sched_fake_stack, coro_stack_bottom(c), coro_stack_usable(c));
	swapcontext(&rt->sched_uctx, &c->uctx);
	ASAN_FINISH(rt->sched_fake_stack, NULL, NULL);
}

void lg__coro_suspend(struct lg_coro *c)
{
	struct lg_runtime *rt = c->rt;
	ASAN_START(&c->asan_fake_stack, rt->sched_stack_bottom, rt->sched_stack_size);
	swapcontext(&c->uctx, &rt->sched_uctx);
	ASAN_FINISH(c->asan_fake_stack, &rt->sched_stack_bottom, &rt->sched_stack_size);
}

_Noreturn void lg__coro_exit(struct lg_coro *c)
{
	struct lg_runtime *rt = c->rt;
	ASAN_START(NULL, rt->sched_stack_bottom, rt->sched_stack_size);
	setcontext(&rt->sched_uctx);
	abort();
}

#endif
