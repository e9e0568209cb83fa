-- shipgate:no-transaction
-- Built without blocking writes; CONCURRENTLY cannot run inside a transaction.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_key ON accounts (email);
