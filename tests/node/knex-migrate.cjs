// Apply a folder of Knex migrations with knex's own migrator (`knex migrate:latest`).
// Usage: node knex-migrate.cjs DATABASE_URL MIGRATIONS_FOLDER [TABLE_NAME]
const knex = require("knex");

async function main() {
  const [url, directory, tableName] = process.argv.slice(2);
  const db = knex({ client: "pg", connection: url });
  try {
    const [batch, applied] = await db.migrate.latest({
      directory,
      tableName: tableName || "knex_migrations",
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
