-- Read models (issue 4): written only by the projection runner (or a rebuild, which fills
-- `TABLE__rebuild` copies of these tables and swaps them in). Every model table has the same
-- head: `key` (the model's row key), `workspace`, `sort` (the list order, fixed-width text so
-- that text order is list order; also the cursor) and `doc` (the row as the API answers it,
-- JSON); then the columns the cabinet filters on. Times are nanoseconds since the Unix epoch.

-- How far each model has applied the log. Written in the same transaction as the model's rows.
CREATE TABLE projection_checkpoints (
    model    TEXT    PRIMARY KEY,
    position BIGINT NOT NULL
);

INSERT INTO projection_checkpoints (model, position) VALUES
    ('machines', 0), ('sessions', 0), ('schedules', 0), ('runs', 0), ('members', 0),
    ('billing', 0), ('activity', 0);

-- tags is `,tag1,tag2,`; search is the lowercase id, name and hostname.
CREATE TABLE machines (
    key       TEXT NOT NULL PRIMARY KEY,
    workspace TEXT NOT NULL,
    sort      TEXT NOT NULL,
    doc       TEXT NOT NULL,
    status    TEXT NOT NULL,
    os        TEXT NOT NULL,
    tags      TEXT NOT NULL,
    search    TEXT NOT NULL
);
CREATE INDEX machines_by_workspace ON machines (workspace, sort);
CREATE INDEX machines_by_status ON machines (workspace, status, sort);
CREATE INDEX machines_by_os ON machines (workspace, os, sort);

CREATE TABLE sessions (
    key       TEXT    NOT NULL PRIMARY KEY,
    workspace TEXT    NOT NULL,
    sort      TEXT    NOT NULL,
    doc       TEXT    NOT NULL,
    machine   TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    state     TEXT    NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX sessions_by_workspace ON sessions (workspace, sort);
CREATE INDEX sessions_by_machine ON sessions (workspace, machine, sort);
CREATE INDEX sessions_by_actor ON sessions (workspace, actor, sort);
CREATE INDEX sessions_by_state ON sessions (workspace, state, sort);

CREATE TABLE schedules (
    key       TEXT NOT NULL PRIMARY KEY,
    workspace TEXT NOT NULL,
    sort      TEXT NOT NULL,
    doc       TEXT NOT NULL,
    status    TEXT NOT NULL
);
CREATE INDEX schedules_by_workspace ON schedules (workspace, sort);

-- machines is `,m1,m2,`: the machines that started the run.
CREATE TABLE runs (
    key       TEXT    NOT NULL PRIMARY KEY,
    workspace TEXT    NOT NULL,
    sort      TEXT    NOT NULL,
    doc       TEXT    NOT NULL,
    schedule  TEXT    NOT NULL,
    status    TEXT    NOT NULL,
    machines  TEXT    NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX runs_by_schedule ON runs (workspace, schedule, sort);
CREATE INDEX runs_by_status ON runs (workspace, status, sort);

CREATE TABLE members (
    key       TEXT NOT NULL PRIMARY KEY,
    workspace TEXT NOT NULL,
    sort      TEXT NOT NULL,
    doc       TEXT NOT NULL,
    status    TEXT NOT NULL,
    role      TEXT NOT NULL
);
CREATE INDEX members_by_workspace ON members (workspace, sort);

CREATE TABLE billing (
    key       TEXT NOT NULL PRIMARY KEY,
    workspace TEXT NOT NULL,
    sort      TEXT NOT NULL,
    doc       TEXT NOT NULL
);

CREATE TABLE activity (
    key       TEXT    NOT NULL PRIMARY KEY,
    workspace TEXT    NOT NULL,
    sort      TEXT    NOT NULL,
    doc       TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX activity_by_workspace ON activity (workspace, sort);
CREATE INDEX activity_by_actor ON activity (workspace, actor, sort);
