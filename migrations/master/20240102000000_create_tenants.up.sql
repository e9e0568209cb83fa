-- One row per tenant; each tenant's data lives in its own schema (migrations/tenant).
-- `shipgate tenants provision NAME` inserts the row (provision_sql in shipgate.toml).
CREATE TABLE tenants (
    schema_name TEXT PRIMARY KEY,
    account_id  BIGINT REFERENCES accounts (id),
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
