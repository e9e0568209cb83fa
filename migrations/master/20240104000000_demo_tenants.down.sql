DROP SCHEMA IF EXISTS acme CASCADE;
DROP SCHEMA IF EXISTS globex CASCADE;
DROP SCHEMA IF EXISTS initech CASCADE;
DELETE FROM tenants WHERE schema_name IN ('acme', 'globex', 'initech');
