-- Object values are JSON of up to a few hundred KB; PostgreSQL compresses values over
-- ~2 KB when it stores them out of line (TOAST). lz4 compresses several times faster than
-- the default pglz at a similar ratio, which matters because every write stores the value
-- twice (canopy_objects and canopy_events). Servers built without lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE canopy_objects ALTER COLUMN value SET COMPRESSION lz4;
    ALTER TABLE canopy_events ALTER COLUMN value SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value OR undefined_object THEN
    RAISE NOTICE 'lz4 compression is not available; values stay pglz-compressed';
END
$$;
