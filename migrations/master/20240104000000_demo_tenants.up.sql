-- The example project's three demo tenants, so that `shipgate deploy --env local` (scripts/demo)
-- has a fleet to migrate: the rows of tenants_query and their empty schemas, which the tenant
-- set (migrations/tenant) then fills. A real project adds tenants with
-- `shipgate tenants provision NAME` instead.
INSERT INTO tenants (schema_name) VALUES ('acme'), ('globex'), ('initech')
ON CONFLICT DO NOTHING;
CREATE SCHEMA IF NOT EXISTS acme;
CREATE SCHEMA IF NOT EXISTS globex;
CREATE SCHEMA IF NOT EXISTS initech;
