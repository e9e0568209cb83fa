// Apply a folder of Knex migrations with knex's own migrator (`knex migrate:latest`).
// Usage: node knex-migrate.cjs DATABASE_URL MIGRATIONS_FOLDER [TABLE_NAME [SCHEMA]]
// With SCHEMA, the migrations and Knex's tables live in that schema, as a per-tenant Knex
// setup does it (seed 000: one knex_migrations_tenant per tenant schema).
const knex = require("knex");

async function main() {
  const [url, directory, tableName, schemaName] = process.argv.slice(2);
  const db = knex({ client: "pg", connection: url, ...(schemaName ? { searchPath: [schemaName] } : {}) });
  try {
    const [batch, applied] = await db.migrate.latest({
      directory,
      tableName: tableName || "knex_migrations",
      ...(schemaName ? { schemaName } : {}),
      loadExtensions: [".js"],
    });
    console.log(`batch ${batch}: ${applied.length} applied`);
  } finally {
    await db.destroy();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
