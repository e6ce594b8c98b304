/**
 * A loopback TCP relay for outage tests (threats I3): listens on 127.0.0.1 and pipes every
 * connection to a target (e.g. PostgreSQL at 127.0.0.1:5432). `cut()` destroys every piped
 * connection (with a TCP reset) and resets each new one at once, as a database that went away
 * would; `restore()` pipes again. The port stays bound throughout, so nothing else can take it.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpRelay {
  private readonly sockets = new Set<Socket>();
  private readonly upstreams = new Set<Socket>();
  private down = false;
  private server!: Server;
  port = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpRelay> {
    const relay = new TcpRelay(target.host, target.port);
    relay.server = createServer((client) => relay.accept(client));
    await new Promise<void>((resolve, reject) => {
      relay.server.once('error', reject);
      relay.server.listen(0, '127.0.0.1', () => resolve());
    });
    relay.port = (relay.server.address() as AddressInfo).port;
    return relay;
  }

  /** True while connections are piped. */
  get up(): boolean {
    return !this.down;
  }

  /** Local ports of the relay's open connections to the target (what the target sees as client ports). */
  get upstreamPorts(): number[] {
    return [...this.upstreams].flatMap((s) => (s.localPort !== undefined ? [s.localPort] : []));
  }

  /** The outage: every piped connection is reset, and new ones are reset as they arrive. */
  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
  }

  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.down) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: this.targetHost, port: this.targetPort });
    this.upstreams.add(upstream);
    upstream.on('close', () => this.upstreams.delete(upstream));
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  }
}
