// The floor: a bare undici pass-through proxy with no checks (same Agent settings as UpstreamProxy).
import { createServer } from 'node:http';
import { Agent } from 'undici';
const upstream = new URL(process.argv[2]);
const agent = new Agent({ keepAliveTimeout: 10_000 });
const server = createServer(async (req, res) => {
  try {
    const headers = { ...req.headers, host: upstream.host };
    delete headers.connection;
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    const out = await agent.request({ origin: upstream.origin, path: req.url.replace(/^\/ath\/proxy\/bench/, ''), method: req.method, headers, body: hasBody ? req : null });
    const h = { ...out.headers };
    delete h.connection;
    delete h['keep-alive'];
    delete h['transfer-encoding'];
    res.writeHead(out.statusCode, h);
    out.body.pipe(res);
  } catch {
    res.writeHead(502).end();
  }
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send({ url: `http://127.0.0.1:${server.address().port}` }));
