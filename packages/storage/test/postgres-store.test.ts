import type { Store } from '@athkit/core';
import { createPostgresStore } from '../src/index.js';
import { describeStoreContract } from './store-contract.js';
import { describePostgresSpecific } from './postgres-specific.js';
import { describePostgresOutage } from './postgres-outage.js';
import { dropSchema, freshSchemaName, pgTestUrl } from './helpers.js';

// Every PostgreSQL suite lives in this one file, so a run without a database prints one skip line.
const url = pgTestUrl();

if (url) {
  describeStoreContract('postgres', async () => {
    // A fresh schema per test (athkit_test_<random>), dropped afterwards.
    const schema = freshSchemaName();
    const store = await createPostgresStore({ connectionString: url, schema });
    const peers: Store[] = [];
    return {
      store,
      openPeer: async () => {
        const peer = await createPostgresStore({ connectionString: url, schema });
        peers.push(peer);
        return peer;
      },
      crossInstanceEvents: true,
      dispose: async () => {
        for (const p of peers) await p.close();
        await store.close();
        await dropSchema(url, schema);
      },
    };
  });
  describePostgresSpecific(url);
  describePostgresOutage(url);
}
