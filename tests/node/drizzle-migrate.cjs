// Apply a drizzle-kit folder with drizzle-orm's own migrator (node-postgres driver).
// Usage: node drizzle-migrate.cjs DATABASE_URL MIGRATIONS_FOLDER
const { Client } = require("pg");
const { drizzle } = require("drizzle-orm/node-postgres");
const { migrate } = require("drizzle-orm/node-postgres/migrator");

async function main() {
  const [url, folder] = process.argv.slice(2);
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await migrate(drizzle(client), { migrationsFolder: folder });
  } finally {
    await client.end();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
