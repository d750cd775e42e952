-- The ORM quickstart's tables (libguard/examples/quickstart.c). Its models are generated
-- from them: lifeguard codegen --schema quickstart --out libguard/examples/models
CREATE SCHEMA quickstart;

CREATE TABLE quickstart.users (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    name text,
    version int8 NOT NULL DEFAULT 1
);
COMMENT ON COLUMN quickstart.users.version IS 'lifeguard: version';

CREATE TABLE quickstart.posts (
    id bigserial PRIMARY KEY,
    user_id int8 NOT NULL REFERENCES quickstart.users (id) ON DELETE CASCADE,
    title text NOT NULL
);
