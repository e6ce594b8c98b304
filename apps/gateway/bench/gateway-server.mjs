// The gateway under test (SQLite store in a temp dir), with one token issued through an in-process handshake.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attestationsFor, benchGateway, handshake } from './common.mjs';
const dir = mkdtempSync(join(tmpdir(), 'ath-bench-gw-'));
const { gw, keys } = await benchGateway({ storage: `sqlite:${join(dir, 'gw.db')}`, upstream: `${process.argv[2]}/`, rateLimited: process.argv[3] === 'limited' });
const address = await gw.listen({ port: 0, host: '127.0.0.1' });
const { token, agentId } = await handshake(gw, 0, await attestationsFor(keys, 0));
process.send({ url: address, token, agentId });
process.on('SIGINT', () => process.exit(0));
