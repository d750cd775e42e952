DROP TABLE public.lg_demo;
