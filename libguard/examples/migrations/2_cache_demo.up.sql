-- The table the cache demo reads through lg_cache (libguard/examples/cache_demo.c);
-- scripts/demo reflects it with lifeguard-reflector reflect public.cache_demo.
CREATE TABLE public.cache_demo (
    id int PRIMARY KEY,
    name text,
    hits int NOT NULL DEFAULT 0
);
INSERT INTO public.cache_demo VALUES (1, 'ada', 0);
