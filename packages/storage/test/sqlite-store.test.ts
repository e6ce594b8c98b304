import { join } from 'node:path';
import type { Store } from '@athkit/core';
import { createSqliteStore } from '../src/index.js';
import { describeStoreContract } from './store-contract.js';
import { tempDir } from './helpers.js';

describeStoreContract('sqlite', async () => {
  const tmp = tempDir();
  const filename = join(tmp.dir, 'ath.db');
  const store = await createSqliteStore({ filename });
  const peers: Store[] = [];
  return {
    store,
    openPeer: async () => {
      const peer = await createSqliteStore({ filename });
      peers.push(peer);
      return peer;
    },
    crossInstanceEvents: false,
    dispose: async () => {
      for (const p of peers) await p.close();
      await store.close();
      tmp.remove();
    },
  };
});
