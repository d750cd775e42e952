DROP TABLE public.cache_demo;
