// A second floor: the same pass-through, written the way the gateway's fast path writes responses
// (undici dispatch, chunks straight into the ServerResponse, no Readable and no pipe). The
// gateway's ratio to this one is its cost against the same forwarding technique.
import { createServer } from 'node:http';
import { Agent } from 'undici';
const upstream = new URL(process.argv[2]);
const agent = new Agent({ keepAliveTimeout: 10_000 });
const server = createServer((req, res) => {
  const headers = { ...req.headers, host: upstream.host };
  delete headers.connection;
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  const opts = { origin: upstream.origin, path: req.url.replace(/^\/ath\/proxy\/bench/, ''), method: req.method, headers, body: hasBody ? req : null };
  agent.dispatch(opts, {
    onRequestStart() {},
    onResponseStart(_c, status, h) {
      if (status < 200) return;
      delete h.connection;
      delete h['keep-alive'];
      delete h['transfer-encoding'];
      res.writeHead(status, h);
    },
    onResponseData(c, chunk) {
      if (!res.write(chunk)) {
        c.pause();
        res.once('drain', () => c.resume());
      }
    },
    onResponseEnd() {
      res.end();
    },
    onResponseError() {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    },
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send({ url: `http://127.0.0.1:${server.address().port}` }));
