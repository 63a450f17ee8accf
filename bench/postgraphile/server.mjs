// One Node process serving PostGraphile 5 on 127.0.0.1:$PORT/graphql (bench/suite.py starts it with the
// node 22 binary installed by this folder's package.json). It listens once the schema is built.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import preset from "./graphile.config.mjs";

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
await pgl.getSchema(); // build the schema before listening: the first request is not a cold start
const server = createServer();
server.on("error", (e) => {
  console.error(e);
  process.exit(1);
});
await serv.addTo(server);
const { port, host } = preset.grafserv;
server.listen(port, host, () => console.log(`PostGraphile on http://${host}:${port}/graphql`));
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    server.close();
    await pgl.release();
    process.exit(0);
  });
}
