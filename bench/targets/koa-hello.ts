/** The ceiling of any Koa app on this machine: bare Koa 3 answering "hello". */
import Koa from 'koa';

const app = new Koa();
app.use((ctx) => {
  ctx.body = 'hello';
});
const server = app.listen(0, '127.0.0.1', () => {
  console.log(
    `READY ${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })}`,
  );
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
