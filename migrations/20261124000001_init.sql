-- Canopy shard storage. One database per shard holds every logical cluster of that shard.
-- See docs/storage.md for the design (single writer, group commit, gap-free resourceVersions).

-- The shard-wide resourceVersion counter, and the fence every write transaction updates
-- with a compare-and-set, so that a second writer on the same database is detected.
CREATE TABLE canopy_state (
    id            smallint PRIMARY KEY CHECK (id = 1),
    rv            bigint   NOT NULL,
    -- events with rv <= compacted_rv have been deleted from canopy_events
    compacted_rv  bigint   NOT NULL
);
INSERT INTO canopy_state (id, rv, compacted_rv) VALUES (1, 0, 0);

-- Current state: one row per live object.
CREATE TABLE canopy_objects (
    resource   text   NOT NULL,  -- "<group>/<plural>", e.g. "/configmaps", "rbac.authorization.k8s.io/roles"
    cluster    text   NOT NULL,  -- logical cluster name
    namespace  text   NOT NULL,  -- "" for cluster-scoped objects
    name       text   NOT NULL,
    rv         bigint NOT NULL,  -- resourceVersion of the last write
    value      bytea  NOT NULL,  -- the object as JSON, metadata.resourceVersion included
    PRIMARY KEY (resource, cluster, namespace, name)
);

-- History: one row per change, in commit order, kept for a bounded window (watch resume
-- after a restart); compacted in the background.
CREATE TABLE canopy_events (
    rv         bigint   PRIMARY KEY,
    type       smallint NOT NULL,  -- 1 added, 2 modified, 3 deleted
    resource   text     NOT NULL,
    cluster    text     NOT NULL,
    namespace  text     NOT NULL,
    name       text     NOT NULL,
    value      bytea    NOT NULL   -- the object after the change (for deletes: its last state)
);
