-- The table lg_demo's coroutines insert into (libguard/examples/lg_demo.c empties it first).
CREATE TABLE public.lg_demo (
    id bigint PRIMARY KEY,
    note text
);
