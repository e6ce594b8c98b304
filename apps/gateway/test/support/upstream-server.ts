/**
 * The recording upstream API of threats 3.0 ("API"): a real HTTP server on 127.0.0.1:0 that
 * records and echoes the method, raw path (with query), headers and body length/hash it received.
 * `handler` can be replaced per test for special answers (errors, redirects, hangs, big bodies).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  /** The request target exactly as received (path + query). */
  rawPath: string;
  headers: IncomingMessage['headers'];
  /** Raw header names as sent, in order (to see duplicates). */
  headerNames: string[];
  bodyLength: number;
  bodySha256: string;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, record: RecordedRequest) => void;

export const echo: UpstreamHandler = (_req, res, record) => {
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' }).end(JSON.stringify(record));
};

export class RecordingUpstream {
  readonly requests: RecordedRequest[] = [];
  handler: UpstreamHandler = echo;
  origin = '';
  private server!: Server;

  constructor(private readonly host = '127.0.0.1') {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        length += chunk.length;
        hash.update(chunk);
      });
      req.on('error', () => undefined); // the gateway may abort a request mid-body (size limit, client gone)
      req.on('end', () => {
        const names: string[] = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2) names.push(req.rawHeaders[i]!.toLowerCase());
        const record: RecordedRequest = {
          method: req.method ?? '',
          rawPath: req.url ?? '',
          headers: req.headers,
          headerNames: names,
          bodyLength: length,
          bodySha256: hash.digest('hex'),
        };
        this.requests.push(record);
        this.handler(req, res, record);
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, this.host, resolve));
    this.origin = `http://${this.host}:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  get hits(): number {
    return this.requests.length;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
